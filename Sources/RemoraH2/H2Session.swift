import CNGHTTP2
import RemoraCore

/// One HTTP/2 connection over nghttp2: bytes in (`receive`), bytes out (`send`), driven
/// by the caller; no sockets, no event loop. Not thread-safe: one owner, one thread.
///
/// Protections on top of nghttp2's own (outbound ACK flood, SETTINGS size,
/// CONTINUATION count, RST_STREAM rate): rapid reset counted as premature resets
/// (CVE-2023-44487), runs of empty DATA frames, header blocks over our limits
/// (delivered as `oversized`, never buffered), and DATA the caller never consumes
/// going back to the connection window when its stream closes.
public final class H2Session {
    public static let sendLowWater = 16 * 1024

    public let role: H2Role
    public let settings: H2Settings
    /// unowned(unsafe): the delegate (a connection) owns the session and outlives it,
    /// and callbacks are the hot path, so no reference counting on each call.
    public unowned(unsafe) var delegate: H2SessionDelegate
    let pool: BufferPool
    /// Non-nil from init to deinit.
    var ng: OpaquePointer!

    var streams: [Int32: H2Stream] = [:]
    private var spare: [H2Stream] = []
    /// Streams the delegate knows (not yet h2StreamClosed).
    var visibleStreams = 0

    // The header block being received: bytes, field ranges, running size.
    let headerBytes: ByteBuffer
    var headerFields: UnsafeMutablePointer<H2Field>?
    var headerCount = 0
    var headerListBytes = 0
    var headerOversized = false
    /// `:status` of the block being received (client), 0 when absent.
    var headerStatus = 0
    /// Reused for every block we submit; nghttp2 copies names and values.
    var nvScratch: [nghttp2_nv] = []

    // Abuse accounting.
    var peerStreams = 0
    var prematureResets = 0
    var resetsReceived = 0
    var emptyDataRun = 0
    /// A GOAWAY with an error went out, or we decided to end the session.
    var failed = false
    var inCall = false

    public internal(set) var receivedGoAway = false
    var sentGoAway = false
    /// Peer streams above this id are refused: nghttp2 only starts ignoring them once
    /// our GOAWAY is on the wire, and the peer may already treat them as refused.
    var goAwayLastStream = Int32.max
    /// Set when the session closed the connection for abuse: "rapid-reset",
    /// "empty-frames", "flood" (for logs and tests).
    public internal(set) var abuse: String?

    /// Premature resets that end the session (and at least half of the peer's streams).
    static let rapidResetThreshold = 100
    /// Consecutive empty DATA frames (no END_STREAM) tolerated.
    static let emptyDataLimit = 10
    static let resetBurst: UInt64 = 1000
    static let resetRate: UInt64 = 33

    public init(role: H2Role, settings: H2Settings, pool: BufferPool, delegate: H2SessionDelegate) {
        self.role = role
        self.settings = settings
        self.pool = pool
        self.delegate = delegate
        headerBytes = ByteBuffer(pool: pool)

        var opt: OpaquePointer?
        precondition(nghttp2_option_new(&opt) == 0, "nghttp2_option_new")
        defer { nghttp2_option_del(opt) }
        // Flow control follows the caller's consume() (back-pressure), not arrival.
        nghttp2_option_set_no_auto_window_update(opt, 1)
        // A peer that sends PING/SETTINGS but never reads our ACKs is cut off here.
        nghttp2_option_set_max_outbound_ack(opt, 1000)
        nghttp2_option_set_max_settings(opt, 32)
        nghttp2_option_set_max_continuations(opt, 8)
        nghttp2_option_set_stream_reset_rate_limit(opt, H2Session.resetBurst, H2Session.resetRate)
        // Closed streams are kept only for RFC 7540 priorities, which we do not use.
        nghttp2_option_set_no_closed_streams(opt, 1)

        let user = Unmanaged.passUnretained(self).toOpaque()
        var s: OpaquePointer?
        let rv = role == .server
            ? nghttp2_session_server_new2(&s, h2Callbacks, user, opt)
            : nghttp2_session_client_new2(&s, h2Callbacks, user, opt)
        precondition(rv == 0 && s != nil, "nghttp2 session: \(rv)")
        ng = s

        var iv = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                                   value: UInt32(clamping: settings.maxConcurrentStreams)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                                   value: UInt32(clamping: min(settings.initialStreamWindow, Int(Int32.max)))),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                                   value: UInt32(clamping: settings.maxHeaderListBytes)),
        ]
        if role == .client {
            iv.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        _ = nghttp2_submit_settings(ng, UInt8(NGHTTP2_FLAG_NONE.rawValue), iv, iv.count)
        let window = Int32(clamping: settings.connectionWindow)
        if window > 65_535 {
            _ = nghttp2_session_set_local_window_size(ng, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, window)
        }
    }

    deinit {
        nghttp2_session_del(ng)
        headerFields?.deallocate()
    }

    // MARK: bytes in, bytes out

    /// Feeds bytes read from the socket (all of them). false: a connection error or
    /// abuse; a GOAWAY is queued — call send(into:) to write it, then close.
    /// A protocol error nghttp2 detects itself (bad frame, HPACK, flow control) queues
    /// its GOAWAY while this call still returns true; the next call returns false, and
    /// once send(into:) has written that GOAWAY wantsRead and wantsWrite are both false.
    public func receive(_ input: UnsafeRawBufferPointer) -> Bool {
        precondition(!inCall, "H2Session.receive called from a delegate callback")
        if failed || abuse != nil { return false }
        guard input.count > 0 else { return true }
        // The delegate may drop its last reference to us from a callback.
        return withExtendedLifetime(self) {
            inCall = true
            defer { inCall = false }
            let n = nghttp2_session_mem_recv(ng, input.baseAddress!.assumingMemoryBound(to: UInt8.self), input.count)
            if n < 0 {
                if Int32(n) == NGHTTP2_ERR_FLOODED.rawValue {
                    if abuse == nil { abuse = "flood" }
                } else {
                    let code = Int32(n) == NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue ? NGHTTP2_PROTOCOL_ERROR : NGHTTP2_INTERNAL_ERROR
                    _ = nghttp2_session_terminate_session(ng, code.rawValue)
                }
                failed = true
                return false
            }
            return !failed && abuse == nil
        }
    }

    /// Appends serialised frames to `out` until nghttp2 has nothing more to send or
    /// out.count >= limit. false on a fatal error (close the connection).
    public func send(into out: ByteBuffer, limit: Int) -> Bool {
        precondition(!inCall, "H2Session.send called from a delegate callback")
        return withExtendedLifetime(self) {
            inCall = true
            defer { inCall = false }
            while out.count < limit {
                var p: UnsafePointer<UInt8>?
                let n = nghttp2_session_mem_send(ng, &p)
                if n < 0 {
                    if Int32(n) == NGHTTP2_ERR_FLOODED.rawValue, abuse == nil { abuse = "flood" }
                    failed = true
                    return false
                }
                if n == 0 { break }
                out.append(UnsafeRawBufferPointer(start: p, count: n))
            }
            return true
        }
    }

    public var wantsRead: Bool { nghttp2_session_want_read(ng) != 0 }
    public var wantsWrite: Bool { nghttp2_session_want_write(ng) != 0 }

    // MARK: server

    /// Response headers (must include ":status", first). endStream false attaches a data
    /// source fed by sendData/endStream. A 1xx ":status" sends an informational block
    /// and leaves the stream waiting for the final response (call respond again).
    public func respond(stream: Int32, headers: H2FieldList, endStream: Bool) -> Bool {
        guard role == .server, let s = streams[stream], s.visible, !s.resetByUs else { return false }
        s.responded = true
        if headers.statusFirstByte == UInt8(ascii: "1") {
            return withNV(headers) { nghttp2_submit_headers(ng, 0, stream, nil, $0, $1, nil) } >= 0
        }
        if endStream {
            return withNV(headers) { nghttp2_submit_response(ng, stream, $0, $1, nil) } == 0
        }
        var provider = h2Provider
        let rv = withNV(headers) { nghttp2_submit_response(ng, stream, $0, $1, &provider) }
        if rv == 0 { s.hasProvider = true }
        return rv == 0
    }

    // MARK: client

    /// A new request (":method", ":scheme", ":authority", ":path" first). Returns the
    /// stream id, or -1 when no stream can be opened.
    public func request(headers: H2FieldList, endStream: Bool) -> Int32 {
        guard canOpenStream else { return -1 }
        var provider = h2Provider
        let id = withNV(headers) { nva, n -> Int32 in
            endStream ? nghttp2_submit_request(ng, nil, nva, n, nil, nil)
                      : nghttp2_submit_request(ng, nil, nva, n, &provider, nil)
        }
        guard id > 0 else { return -1 }
        let s = takeStream(id)
        s.visible = true
        s.hasProvider = !endStream
        visibleStreams += 1
        return id
    }

    // MARK: both

    /// Copies `data` into the stream's send queue (a pooled ByteBuffer; nghttp2 takes
    /// from it as windows allow). The caller bounds the queue with queuedBytes(stream:).
    /// Dropped when the stream is closed, reset, or already ended.
    public func sendData(stream: Int32, _ data: UnsafeRawBufferPointer) {
        guard let s = streams[stream], !s.ended, !s.resetByUs, data.count > 0 else { return }
        s.queue.append(data)
        resume(s)
    }

    public func queuedBytes(stream: Int32) -> Int { streams[stream]?.queue.count ?? 0 }

    /// Ends the stream after the queued data: END_STREAM on the last DATA frame, or a
    /// trailers HEADERS frame with END_STREAM when `trailers` is given.
    public func endStream(stream: Int32, trailers: H2FieldList?) {
        guard let s = streams[stream], !s.ended, !s.resetByUs else { return }
        s.ended = true
        if let t = trailers, t.count > 0 { s.trailers = t }
        resume(s)
    }

    public func reset(stream: Int32, errorCode: UInt32) {
        guard let s = streams[stream], !s.resetByUs else { return }
        s.resetByUs = true
        s.queue.clear()
        _ = nghttp2_submit_rst_stream(ng, 0, stream, errorCode)
    }

    /// Gives `count` received DATA bytes back to the stream and connection windows.
    /// A no-op once the stream has closed (its bytes went back then).
    public func consume(stream: Int32, count: Int) {
        guard let s = streams[stream] else { return }
        let n = min(count, s.unconsumed)
        guard n > 0 else { return }
        s.unconsumed -= n
        _ = nghttp2_session_consume(ng, stream, n)
    }

    /// Server draining: GOAWAY with last-stream-id 2^31-1 now; call goAway later for
    /// the final one.
    public func shutdownNotice() {
        guard role == .server else { return }
        _ = nghttp2_submit_shutdown_notice(ng)
    }

    /// GOAWAY with the last stream id we processed; no new streams are accepted/opened.
    public func goAway(errorCode: UInt32) {
        sentGoAway = true
        let last = nghttp2_session_get_last_proc_stream_id(ng)
        if role == .server { goAwayLastStream = min(goAwayLastStream, last) }
        _ = nghttp2_submit_goaway(ng, 0, last, errorCode, nil, 0)
    }

    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS arrive).
    public var remoteMaxConcurrentStreams: Int {
        Int(nghttp2_session_get_remote_settings(ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS))
    }

    /// Streams open in this session (not yet h2StreamClosed).
    public var openStreams: Int { visibleStreams }

    /// Client: a new stream may be opened now (no GOAWAY either way, below the peer's
    /// limit, stream ids left).
    public var canOpenStream: Bool {
        role == .client && !receivedGoAway && !sentGoAway && !failed && abuse == nil
            && nghttp2_session_check_request_allowed(ng) != 0
            && visibleStreams < remoteMaxConcurrentStreams
    }

    // MARK: internals

    func takeStream(_ id: Int32) -> H2Stream {
        let s = spare.popLast() ?? H2Stream(pool: pool)
        s.id = id
        streams[id] = s
        return s
    }

    func recycle(_ s: H2Stream) {
        s.clear()
        if spare.count < 64 { spare.append(s) }
    }

    private func resume(_ s: H2Stream) {
        guard s.deferred else { return }
        s.deferred = false
        _ = nghttp2_session_resume_data(ng, s.id)
    }

    /// Ends the session for abuse: GOAWAY ENHANCE_YOUR_CALM, input ignored from now on.
    func abort(abuse reason: String) {
        guard abuse == nil else { return }
        abuse = reason
        failed = true
        _ = nghttp2_session_terminate_session(ng, NGHTTP2_ENHANCE_YOUR_CALM.rawValue)
    }

    /// Calls `body` with an nghttp2_nv array over `list`'s bytes (nghttp2 copies them).
    func withNV<R>(_ list: H2FieldList, _ body: (UnsafePointer<nghttp2_nv>?, Int) -> R) -> R {
        nvScratch.removeAll(keepingCapacity: true)
        return list.bytes.withUnsafeBufferPointer { b -> R in
            let base = UnsafeMutablePointer(mutating: b.baseAddress)
            for f in list.ranges {
                nvScratch.append(nghttp2_nv(name: base.map { $0 + f.name.lowerBound }, value: base.map { $0 + f.value.lowerBound },
                                            namelen: f.name.count, valuelen: f.value.count,
                                            flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
            }
            return nvScratch.withUnsafeBufferPointer { body($0.baseAddress, $0.count) }
        }
    }
}
