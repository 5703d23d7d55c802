import RemoraCore
import RemoraHTTP1

/// Responses the proxy produces itself (SPEC §6), with Envoy's response flags.
struct LocalReply {
    let status: Int
    let body: StaticString
    let flag: StaticString
    let overloaded: Bool

    init(_ status: Int, _ body: StaticString, flag: StaticString, overloaded: Bool = false) {
        self.status = status
        self.body = body
        self.flag = flag
        self.overloaded = overloaded
    }

    static let noRoute = LocalReply(404, "", flag: "NR")
    static let noHealthyUpstream = LocalReply(503, "no healthy upstream", flag: "UH")
    static let connectFailure = LocalReply(502, "upstream connect error or disconnect/reset before headers. reset reason: connection failure", flag: "UF")
    static let upstreamReset = LocalReply(502, "upstream connect error or disconnect/reset before headers. reset reason: connection termination", flag: "UC")
    /// Envoy's answer when the upstream TLS handshake fails (bad certificate, SAN mismatch).
    static let upstreamTLSFailure = LocalReply(503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: TLS error", flag: "UF")
    /// A circuit breaker of the cluster is open (connections, requests): Envoy's overflow.
    static let overflow = LocalReply(503, "upstream connect error or disconnect/reset before headers. reset reason: overflow", flag: "UO", overloaded: true)
    static let upstreamTimeout = LocalReply(504, "upstream request timeout", flag: "UT")
    static let badUpstreamResponse = LocalReply(502, "upstream sent an invalid response", flag: "UPE")

    /// Writes the whole response; `close` adds `Connection: close`.
    func write(into out: ByteBuffer, close: Bool, headRequest: Bool = false) {
        LocalReply.writeHead(into: out, status: status, contentLength: body.utf8CodeUnitCount, close: close)
        if overloaded { out.append("x-remora-overloaded: true\r\n") }
        out.append("\r\n")
        if !headRequest { out.append(body) }
    }

    /// A reply the configuration asked for (redirect, directResponse, fault abort, CORS
    /// preflight): any status, extra headers, a body.
    static func writeCustom(status: Int, headers: [(String, String)], body: [UInt8], contentType: StaticString?,
                            close: Bool, headRequest: Bool, into out: ByteBuffer) {
        writeHead(into: out, status: status, contentLength: body.count, close: close, contentType: contentType)
        for (name, value) in headers { HeadWriter.writeLine(name, value, into: out) }
        out.append("\r\n")
        if !headRequest { body.withUnsafeBytes { out.append($0) } }
    }

    /// A reply for a request the codec rejected (400, 431, …): always closes.
    static func writeError(_ e: HTTP1Error, into out: ByteBuffer) {
        let text = e.reason
        writeHead(into: out, status: e.status, contentLength: text.utf8.count, close: true)
        out.append("\r\n")
        out.append(text)
    }

    private static func writeHead(into out: ByteBuffer, status: Int, contentLength: Int, close: Bool,
                                  contentType: StaticString? = "text/plain") {
        out.append("HTTP/1.1 ")
        out.append(decimal: status)
        out.append(byte: UInt8(ascii: " "))
        out.append(HTTP1Parser.reasonPhrase(status))
        out.append("\r\ncontent-length: ")
        out.append(decimal: contentLength)
        out.append("\r\n")
        if let ct = contentType {
            out.append("content-type: ")
            out.append(ct)
            out.append("\r\n")
        }
        if close { out.append("connection: close\r\n") }
    }
}
