import RemoraCore
import RemoraIO
import RemoraTLS

/// What the proxy's upstream connections add to a `Transport` (RemoraTLS): starting TLS
/// after the TCP connect, and logging and counting what fails.
extension Transport {
    /// After an upstream's TCP connect: TLS over it. false when OpenSSL could not make a connection.
    mutating func beginClientTLS(_ ctx: TLSClientContext) -> Bool {
        guard let t = ctx.connection(fd: fd) else { return false }
        tls = t
        return true
    }

    /// One step of an upstream handshake; a failure is logged and counted here (503 UF follows).
    func upstreamHandshakeStep(worker: ProxyWorker, endpoint: EndpointRef) -> HandshakeStep {
        let step = handshakeStep()
        if case .failed(let why) = step {
            worker.tlsHandshakeFailures += 1
            Log.warning("upstream TLS handshake with \(endpoint.address) failed: \(why) (UF)")
        }
        return step
    }

    /// A TLS-level failure (an alert from the peer: it refused our client certificate, say)
    /// is worth a log line, and so is a TLS connection that dies before its first response
    /// (with TLS 1.3 a refused client certificate shows only then); a plain reset is not.
    func logFailure(to endpoint: EndpointRef, firstExchange: Bool) {
        guard let t = tls, t.failureReason != nil || firstExchange else { return }
        Log.warning("upstream TLS connection to \(endpoint.address) failed: \(t.failureReason ?? "closed by the peer before answering") (UC)")
    }
}
