import RemoraCore
import RemoraHTTP1
import RemoraPolicy

/// Serialises request and response heads for the other side of the proxy, straight
/// from the parsed byte ranges into the destination's write buffer.
enum HeadWriter {
    @inline(__always) static func slice(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buf[r])
    }

    /// What the downstream side adds to a forwarded request.
    struct RequestContext {
        var peerIP: String
        var forwardedProto: StaticString   // "http" / "https"
        var edge: Bool                     // a gateway listener: x-forwarded-proto is ours, not the client's
        var path: Range<Int>               // origin-form target (absolute-form is reduced to its path)
        var hostFallback: String?          // written as Host when the request had none (HTTP/1.0)
        var pathRewrite: String?           // VirtualService rewrite.uri / uriRegexRewrite result
        var authorityRewrite: String?      // rewrite.authority (or a mirror's "-shadow" host)
        var headerOps: HeaderOps?          // headers.request at route and destination level
        var connectionClose = false        // a mirror asks the upstream to close after answering
        var requestID: String?             // shared by a request and its mirrors
    }

    /// A run of body bytes, chunk-framed when the body is chunked.
    @inline(__always) static func writeBody(_ data: UnsafeRawBufferPointer, chunked: Bool, into out: ByteBuffer) {
        if chunked {
            let p = out.reserve(18)
            out.commit(HTTP1Parser.writeChunkHeader(size: data.count, to: p))
            out.append(data)
            out.append("\r\n")
        } else {
            out.append(data)
        }
    }

    /// The last chunk with its trailer section.
    static func writeLastChunk(_ trailers: UnsafeRawBufferPointer, into out: ByteBuffer) {
        out.append("0\r\n")
        out.append(trailers)
        out.append("\r\n")
    }

    static func writeRequest(_ head: RequestHead, buf: UnsafeRawBufferPointer, ctx: RequestContext,
                             into out: ByteBuffer, random: inout FastRandom) {
        out.append(slice(buf, head.method))
        out.append(byte: UInt8(ascii: " "))
        if let p = ctx.pathRewrite {
            out.append(p)
        } else if ctx.path.isEmpty {
            out.append(byte: UInt8(ascii: "/"))
        } else {
            out.append(slice(buf, ctx.path))
        }
        out.append(" HTTP/1.1\r\n")
        var rules = RequestFieldRules(head: head, ctx: ctx)
        for h in head.headers where rules.keep(h, buf: buf) {
            writeField(h, buf: buf, into: out)
        }
        if let host = ctx.authorityRewrite ?? (head.hostIndex == nil ? ctx.hostFallback : nil) {
            out.append("host: ")
            out.append(host)
            out.append("\r\n")
        }
        if let ops = rules.ops { writeOps(ops, into: out) }
        if ctx.connectionClose { out.append("connection: close\r\n") }
        // One x-forwarded-for: the client's list, then the peer that connected to us.
        out.append("x-forwarded-for: ")
        if rules.forwardedFor > 0 {
            for h in head.headers where h.token == .xForwardedFor && !h.value.isEmpty {
                out.append(slice(buf, h.value))
                out.append(", ")
            }
        }
        out.append(ctx.peerIP)
        out.append("\r\n")
        if !rules.hasProto {
            out.append("x-forwarded-proto: ")
            out.append(ctx.forwardedProto)
            out.append("\r\n")
        }
        if !rules.hasRequestID {
            out.append("x-request-id: ")
            if let id = ctx.requestID { out.append(id) } else { RequestID.write(into: out, random: &random) }
            out.append("\r\n")
        }
        writeFraming(head.framing, chunked: head.framing == .chunked, into: out)
        if head.upgrade, let u = rules.upgradeValue {
            out.append("connection: upgrade\r\nupgrade: ")
            out.append(slice(buf, u))
            out.append("\r\n")
        }
        out.append("\r\n")
    }

    /// The proxy's rules for a forwarded request's fields, shared by the HTTP/1.1 and
    /// HTTP/2 writers: which fields pass as sent, and what it learns on the way.
    struct RequestFieldRules {
        let ops: HeaderOps?
        let edge: Bool
        let expectContinue: Bool
        let authorityRewritten: Bool
        var hasRequestID = false
        var hasProto = false
        var forwardedFor = 0
        var upgradeValue: Range<Int>?
        /// The client's TE lists "trailers" (the only TE HTTP/2 allows; gRPC needs it).
        var teTrailers = false

        init(head: RequestHead, ctx: RequestContext) {
            ops = ctx.headerOps.flatMap { $0.isEmpty ? nil : $0 }
            edge = ctx.edge
            expectContinue = head.expectContinue
            authorityRewritten = ctx.authorityRewrite != nil
        }

        @inline(__always)
        mutating func keep(_ h: HeaderField, buf: UnsafeRawBufferPointer) -> Bool {
            if h.hopByHop {
                if h.token == .upgrade { upgradeValue = h.value }
                if h.token == .te && HeadWriter.listsTrailers(slice(buf, h.value)) { teTrailers = true }
                return false
            }
            switch h.token {
            case .xForwardedFor:
                forwardedFor += 1
                return false
            case .xForwardedProto:
                if edge { return false }
                hasProto = true
            case .xRequestId:
                hasRequestID = true
            case .expect where expectContinue:
                return false   // the proxy answered 100 Continue itself (Envoy's default)
            case .contentLength:
                return false   // written once from the parsed framing ("5, 5" or repeats normalised)
            case .host where authorityRewritten:
                return false
            default:
                break
            }
            if let ops, ops.drops(name: slice(buf, h.name)) { return false }
            return true
        }
    }

    /// Whether a TE value lists the "trailers" token (case-insensitive).
    static func listsTrailers(_ v: UnsafeRawBufferPointer) -> Bool {
        let word: [UInt8] = Array("trailers".utf8)
        var i = 0
        while i + word.count <= v.count {
            var match = true
            for k in 0..<word.count where v[i + k] | 0x20 != word[k] { match = false; break }
            if match { return true }
            i += 1
        }
        return false
    }

    /// How the response body is framed towards the client.
    enum ResponseFraming { case asIs, chunked, closeDelimited }

    static func writeResponse(_ head: ResponseHead, buf: UnsafeRawBufferPointer, framing: ResponseFraming,
                              close: Bool, keepAliveHeader: Bool, ops: HeaderOps? = nil,
                              extra: [(String, String)] = [], into out: ByteBuffer) {
        let ops = ops.flatMap { $0.isEmpty ? nil : $0 }
        out.append("HTTP/1.1 ")
        out.append(decimal: head.status)
        out.append(byte: UInt8(ascii: " "))
        if head.reason.isEmpty { out.append(HTTP1Parser.reasonPhrase(head.status)) } else { out.append(slice(buf, head.reason)) }
        out.append("\r\n")
        var upgradeValue: Range<Int>?
        for h in head.headers {
            if h.hopByHop {
                if h.token == .upgrade { upgradeValue = h.value }
                continue
            }
            // Content-Length is rewritten from the framing, except where it describes a body
            // that is not sent (HEAD, 304): there it passes as the upstream wrote it.
            if h.token == .contentLength && head.framing != .none { continue }
            if let ops, ops.drops(name: slice(buf, h.name)) { continue }
            writeField(h, buf: buf, into: out)
        }
        if let ops { writeOps(ops, into: out) }
        for (name, value) in extra { writeLine(name, value, into: out) }
        writeFraming(head.framing, chunked: framing == .chunked, into: out)
        if head.status == 101, let u = upgradeValue {
            out.append("connection: upgrade\r\nupgrade: ")
            out.append(slice(buf, u))
            out.append("\r\n")
        } else if close {
            out.append("connection: close\r\n")
        } else if keepAliveHeader {
            out.append("connection: keep-alive\r\n")
        }
        out.append("\r\n")
    }

    /// `set` then `add` (removed and replaced names were already skipped by `drops`).
    static func writeOps(_ ops: HeaderOps, into out: ByteBuffer) {
        for (name, value) in ops.set { writeLine(name, value, into: out) }
        for (name, value) in ops.add { writeLine(name, value, into: out) }
    }

    static func writeLine(_ name: String, _ value: String, into out: ByteBuffer) {
        out.append(name)
        out.append(": ")
        out.append(value)
        out.append("\r\n")
    }

    /// One clean framing header: the length the codec validated, or chunked.
    private static func writeFraming(_ framing: BodyFraming, chunked: Bool, into out: ByteBuffer) {
        if chunked {
            out.append("transfer-encoding: chunked\r\n")
        } else if case .contentLength(let n) = framing {
            out.append("content-length: ")
            out.append(decimal: Int(n))
            out.append("\r\n")
        }
    }

    @inline(__always) static func writeField(_ h: HeaderField, buf: UnsafeRawBufferPointer, into out: ByteBuffer) {
        out.append(slice(buf, h.name))
        out.append(": ")
        out.append(slice(buf, h.value))
        out.append("\r\n")
    }
}
