import RemoraCore
import RemoraH2
import RemoraHTTP1

/// How an upstream failed before or during a response.
enum UpstreamFailure { case connectFailed, tlsFailed, reset, refused, protocolError }

/// A trailer section from either protocol: HTTP/1.1's raw "name: value\r\n" lines, or an
/// HTTP/2 header block. Valid only during the call that hands it over.
enum Trailers {
    case http1(UnsafeRawBufferPointer)
    case h2(H2HeaderView)

    /// Each field with its name lowercased as HTTP/2 needs it (pseudo-headers skipped).
    func appendLowercased(to list: inout H2FieldList) {
        switch self {
        case .http1(let raw):
            forEachTrailerField(raw) { name, value in list.append(lowercasing: name, value) }
        case .h2(let view):
            for f in view.fields where view.bytes[f.name.lowerBound] != UInt8(ascii: ":") {
                list.append(UnsafeRawBufferPointer(rebasing: view.bytes[f.name]),
                            UnsafeRawBufferPointer(rebasing: view.bytes[f.value]))
            }
        }
    }

    /// The value of a field (lowercase name), if present.
    func value(_ name: String) -> UnsafeRawBufferPointer? {
        switch self {
        case .h2(let view):
            return view.value(name)
        case .http1(let raw):
            var found: UnsafeRawBufferPointer?
            forEachTrailerField(raw) { n, v in
                if found == nil, n.count == name.utf8.count, zip(n, name.utf8).allSatisfy({ $0 | 0x20 == $1 }) { found = v }
            }
            return found
        }
    }

    /// As HTTP/1.1 trailer lines ("name: value\r\n" each).
    func writeLines(into out: ByteBuffer) {
        switch self {
        case .http1(let raw):
            out.append(raw)
        case .h2(let view):
            for f in view.fields where view.bytes[f.name.lowerBound] != UInt8(ascii: ":") {
                out.append(UnsafeRawBufferPointer(rebasing: view.bytes[f.name]))
                out.append(": ")
                out.append(UnsafeRawBufferPointer(rebasing: view.bytes[f.value]))
                out.append("\r\n")
            }
        }
    }
}

/// The client side of one exchange, as its upstream sees it: an HTTP/1.1 connection's
/// current request (DownstreamConnection) or an HTTP/2 stream (H2ServerStream).
protocol ResponseSink: AnyObject {
    /// Bytes the upstream may still hand over before the client side drains.
    var responseRoom: Int { get }
    /// The final response head (or 101 for an upgrade).
    func upstreamResponseHead(_ rh: ResponseHead, buf: UnsafeRawBufferPointer)
    func upstreamResponseData(_ data: UnsafeRawBufferPointer)
    func upstreamResponseTrailers(_ trailers: Trailers)
    /// The response is complete. `reusable`: an HTTP/1.1 upstream may keep the connection.
    func upstreamResponseEnd(reusable: Bool)
    /// The upstream failed and has already let go of this exchange.
    func upstreamFailed(_ f: UpstreamFailure, reused: Bool)
    /// Bytes from an upgraded (101) upstream connection.
    func upstreamTunnelData(_ data: UnsafeRawBufferPointer)
    func upstreamTunnelClosed()
    /// Writes out what the client side has buffered.
    func flushResponse()
    /// The upstream's send buffer drained: the request body may flow again.
    func upstreamSendRoom()
}

/// The upstream side of one exchange: an HTTP/1.1 connection (UpstreamConnection) or an
/// HTTP/2 stream on a shared connection (H2UpstreamStream).
protocol UpstreamRequest: AnyObject {
    func attach(_ sink: ResponseSink, method: Method)
    /// Serialises the request head (framing follows head.framing: chunked means a body of
    /// unknown length).
    func sendHead(_ head: RequestHead, buf: UnsafeRawBufferPointer, ctx: HeadWriter.RequestContext,
                  random: inout FastRandom)
    func sendBody(_ data: UnsafeRawBufferPointer)
    /// The request body is complete (with its trailers, if any).
    func sendEnd(trailers: Trailers?)
    /// Request bytes the upstream accepts before it must drain.
    var sendRoom: Int { get }
    /// Set when the upstream stopped reading because the sink had no room.
    var pausedForRoom: Bool { get }
    func flush()
    func scheduleResume()
    /// The client side gave up: the exchange is abandoned (the connection or stream is reset).
    func abandon()
}
