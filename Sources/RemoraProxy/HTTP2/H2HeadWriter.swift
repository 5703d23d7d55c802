import RemoraCore
import RemoraH2
import RemoraHTTP1
import RemoraPolicy

/// Heads as HTTP/2 field lists: requests for an HTTP/2 upstream, responses and local
/// replies for an HTTP/2 client. The same rules as HeadWriter (RequestFieldRules), with
/// names lowercased and no connection-specific fields (RFC 9113 §8.2).
enum H2HeadWriter {
    @inline(__always) static func slice(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buf[r])
    }

    static func request(_ head: RequestHead, buf: UnsafeRawBufferPointer, ctx: HeadWriter.RequestContext,
                        into list: inout H2FieldList, random: inout FastRandom) {
        list.removeAll()
        list.append(":method", slice(buf, head.method))
        list.append(":scheme", "http")
        if let a = ctx.authorityRewrite {
            list.append(":authority", a)
        } else if let hi = head.hostIndex {
            list.append(":authority", slice(buf, head.headers[hi].value))
        } else if let f = ctx.hostFallback {
            list.append(":authority", f)
        }
        if let p = ctx.pathRewrite {
            list.append(":path", p)
        } else if ctx.path.isEmpty {
            list.append(":path", "/")
        } else {
            list.append(":path", slice(buf, ctx.path))
        }
        var rules = HeadWriter.RequestFieldRules(head: head, ctx: ctx)
        for h in head.headers where rules.keep(h, buf: buf) && h.token != .host {
            list.append(lowercasing: slice(buf, h.name), slice(buf, h.value))
        }
        if let ops = rules.ops { appendOps(ops, to: &list) }
        var xff = ""
        for h in head.headers where h.token == .xForwardedFor && !h.value.isEmpty {
            xff += String(decoding: slice(buf, h.value), as: UTF8.self) + ", "
        }
        list.append("x-forwarded-for", xff + ctx.peerIP)
        if !rules.hasProto { list.append("x-forwarded-proto", ctx.forwardedProto) }
        if !rules.hasRequestID { list.append("x-request-id", ctx.requestID ?? RequestID.string(random: &random)) }
        if case .contentLength(let n) = head.framing { list.append("content-length", String(n)) }
        if rules.teTrailers { list.append("te", "trailers") }
    }

    static func response(_ rh: ResponseHead, buf: UnsafeRawBufferPointer, ops: HeaderOps?, extra: [(String, String)],
                         into list: inout H2FieldList) {
        let ops = ops.flatMap { $0.isEmpty ? nil : $0 }
        list.removeAll()
        list.append(":status", String(rh.status))
        for h in rh.headers where !h.hopByHop {
            // The length is rewritten from the framing unless no body follows (HEAD, 304).
            if h.token == .contentLength && rh.framing != .none { continue }
            if let ops, ops.drops(name: slice(buf, h.name)) { continue }
            list.append(lowercasing: slice(buf, h.name), slice(buf, h.value))
        }
        if let ops { appendOps(ops, to: &list) }
        for (name, value) in extra { list.append(name.lowercased(), value) }
        if case .contentLength(let n) = rh.framing { list.append("content-length", String(n)) }
    }

    /// A reply the proxy makes itself.
    static func reply(status: Int, headers: [(String, String)], contentType: StaticString?, bodyBytes: Int?,
                      into list: inout H2FieldList) {
        list.removeAll()
        list.append(":status", String(status))
        if let ct = contentType { list.append("content-type", ct) }
        if let n = bodyBytes { list.append("content-length", String(n)) }
        for (name, value) in headers { list.append(name.lowercased(), value) }
    }

    static func appendOps(_ ops: HeaderOps, to list: inout H2FieldList) {
        for (name, value) in ops.set { list.append(name.lowercased(), value) }
        for (name, value) in ops.add { list.append(name.lowercased(), value) }
    }
}
