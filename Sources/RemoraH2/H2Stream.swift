import RemoraCore

/// Per-stream state of an `H2Session`, recycled through the session's spare list so
/// steady traffic allocates nothing per stream or per frame.
final class H2Stream {
    var id: Int32 = 0
    /// Bytes the caller queued with sendData; pooled, so it holds storage only while
    /// it holds bytes.
    let queue: ByteBuffer
    /// The delegate knows this stream (h2Headers delivered, or opened by request()).
    var visible = false
    /// Server: respond() was called (a later RST_STREAM is not a premature reset).
    var responded = false
    /// A data provider is attached (respond/request with endStream false).
    var hasProvider = false
    /// The read callback returned NGHTTP2_ERR_DEFERRED: resume on new data or end.
    var deferred = false
    /// endStream(stream:trailers:) was called: EOF after the queue drains.
    var ended = false
    var trailers: H2FieldList?
    /// reset() was called: its remaining DATA is consumed here, not delivered.
    var resetByUs = false
    /// DATA bytes delivered but not yet given back with consume(); returned to the
    /// connection window when the stream closes.
    var unconsumed = 0

    init(pool: BufferPool) { queue = ByteBuffer(pool: pool) }

    func clear() {
        queue.clear()
        visible = false
        responded = false
        hasProvider = false
        deferred = false
        ended = false
        trailers = nil
        resetByUs = false
        unconsumed = 0
    }
}
