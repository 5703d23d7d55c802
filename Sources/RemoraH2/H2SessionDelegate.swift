/// What a session reports. Calls happen only inside `H2Session.receive` and
/// `H2Session.send`; the delegate may call respond/request/sendData/endStream/reset/
/// consume from inside them, but never receive or send.
public protocol H2SessionDelegate: AnyObject {
    func h2Headers(_ s: H2Session, stream: Int32, kind: H2HeadersKind, headers: H2HeaderView, endStream: Bool)
    /// DATA payload (may come in several pieces per frame). The bytes keep counting
    /// against the stream and connection receive windows until the caller calls
    /// consume(stream:count:): that is how flow control follows back-pressure.
    func h2Data(_ s: H2Session, stream: Int32, data: UnsafeRawBufferPointer)
    /// END_STREAM arrived on a DATA frame (for HEADERS it is h2Headers' endStream).
    func h2EndStream(_ s: H2Session, stream: Int32)
    /// The stream is closed (normal completion, RST_STREAM from the peer, reset by us,
    /// GOAWAY). errorCode 0 = NO_ERROR. At most once per stream the delegate has seen
    /// via h2Headers or created via request(...); nothing follows for that stream.
    func h2StreamClosed(_ s: H2Session, stream: Int32, errorCode: UInt32)
    /// Bytes were taken from this stream's send queue and it now holds fewer than
    /// H2Session.sendLowWater bytes: the caller may queue more.
    func h2SendRoom(_ s: H2Session, stream: Int32)
}
