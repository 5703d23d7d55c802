#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import RemoraIO

/// TLS over one non-blocking socket: OpenSSL reads and writes the fd itself
/// (SSL_set_fd). Used by one event-loop thread only. Edge-triggered callers keep the
/// same rule as for plain sockets — a side is drained only when a call returns
/// `.wouldBlock` — plus one: after the handshake, read at once, since application data
/// that arrived with the last handshake flight may already be buffered here.
public final class TLSConnection {
    public enum Handshake: Equatable {
        case done, wantRead, wantWrite
        /// A reason for the log: OpenSSL's, or the verify result
        /// ("certificate verify failed: hostname mismatch").
        case failed(String)
    }

    let ssl: OpaquePointer
    /// Server side: the listener's contexts when this connection was accepted.
    let serverSet: ServerContextSet?
    /// Client side: the context (its callbacks find it through the SSL_CTX).
    let client: TLSClientContext?
    public private(set) var handshakeDone = false
    /// The last read got WANT_WRITE (a key update or renegotiation to answer): retry
    /// the read on the next writable event.
    public private(set) var wantsWriteForRead = false
    /// The last write got WANT_READ: retry the write on the next readable event.
    public private(set) var wantsReadForWrite = false
    /// A fatal error happened: no more I/O, and no close_notify (OpenSSL forbids it).
    private var broken = false
    private var failure: String?
    private var shutdownSent = false
    /// SNI the client sent (server side); set during the handshake.
    public internal(set) var serverName: String?

    init(ssl: OpaquePointer, serverSet: ServerContextSet?, client: TLSClientContext?) {
        self.ssl = ssl
        self.serverSet = serverSet
        self.client = client
        _ = SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Frees the SSL; the fd is the caller's to close.
    deinit {
        SSL_set_ex_data(ssl, 0, nil)
        SSL_free(ssl)
    }

    // MARK: handshake

    public func handshake() -> Handshake {
        if handshakeDone { return .done }
        if let failure { return .failed(failure) }
        let r = SSL_do_handshake(ssl)
        if r == 1 {
            handshakeDone = true
            return .done
        }
        let code = SSL_get_error(ssl, r)
        let err = errno
        switch code {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN:
            return fail("connection closed by the peer during the handshake")
        case SSL_ERROR_SYSCALL:
            let queued = OpenSSLError.drainReasons()
            if !queued.isEmpty { return fail(queued) }
            return fail(err == 0 ? "connection closed by the peer during the handshake" : "handshake: \(String(cString: strerror(err)))")
        default:
            return fail(handshakeFailureReason())
        }
    }

    private func fail(_ reason: String) -> Handshake {
        broken = true
        failure = reason
        ERR_clear_error()
        return .failed(reason)
    }

    /// The verify result when verification failed, else OpenSSL's reasons (e.g. the
    /// peer's alert: "tlsv1 alert unknown ca", "unsupported protocol").
    private func handshakeFailureReason() -> String {
        let reasons = OpenSSLError.drainReasons()
        let verify = SSL_get_verify_result(ssl)
        if verify != X509_V_OK, SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER != 0 {
            return "certificate verify failed: \(String(cString: X509_verify_cert_error_string(verify)))"
        }
        return reasons.isEmpty ? "TLS handshake failed" : reasons
    }

    // MARK: data

    /// Same results as a plain socket read. SSL_read returns one record at most, so a
    /// short read does not mean the socket is drained: only `.wouldBlock` does.
    public func read(into p: UnsafeMutableRawPointer, count: Int) -> Socket.IOResult {
        guard !broken else { return .failed(EPROTO) }
        guard count > 0 else { return .bytes(0) }
        var n = 0
        let r = SSL_read_ex(ssl, p, count, &n)
        if r == 1 {
            wantsWriteForRead = false
            return .bytes(n)
        }
        return ioFailure(r, reading: true)
    }

    /// Same results as a plain socket write. Partial writes are on, and the buffer may
    /// move between retries (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER); a retry after
    /// `.wouldBlock` must pass the same bytes again, possibly followed by more.
    public func write(_ bytes: UnsafeRawBufferPointer) -> Socket.IOResult {
        guard !broken else { return .failed(EPROTO) }
        guard bytes.count > 0, let base = bytes.baseAddress else { return .bytes(0) }
        var n = 0
        let r = SSL_write_ex(ssl, base, bytes.count, &n)
        if r == 1 {
            wantsReadForWrite = false
            return .bytes(n)
        }
        return ioFailure(r, reading: false)
    }

    private func ioFailure(_ r: Int32, reading: Bool) -> Socket.IOResult {
        let code = SSL_get_error(ssl, r)
        let err = errno
        switch code {
        case SSL_ERROR_WANT_READ:
            if !reading { wantsReadForWrite = true }
            return .wouldBlock
        case SSL_ERROR_WANT_WRITE:
            if reading { wantsWriteForRead = true }
            return .wouldBlock
        case SSL_ERROR_ZERO_RETURN:
            // close_notify, or a plain TCP EOF (SSL_OP_IGNORE_UNEXPECTED_EOF).
            return .eof
        case SSL_ERROR_SYSCALL:
            broken = true
            ERR_clear_error()
            return err == 0 ? .eof : .failed(err)
        default:
            broken = true
            failure = OpenSSLError.drainReasons()
            return .failed(EPROTO)
        }
    }

    /// Bytes (or records) already read from the socket and held by OpenSSL: a reader
    /// that stopped early must come back for them without waiting for an event.
    public var hasBufferedInput: Bool { SSL_has_pending(ssl) == 1 }

    /// Why the connection failed (handshake or a later protocol error), for the log.
    public var failureReason: String? { failure }

    /// Best-effort close_notify: non-blocking, never waits for the peer's.
    public func shutdown() {
        guard handshakeDone, !broken, !shutdownSent else { return }
        shutdownSent = true
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    // MARK: what was negotiated

    /// The negotiated ALPN protocol.
    public var alpn: String? {
        var p: UnsafePointer<UInt8>?
        var n: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &n)
        guard let p, n > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(n)), as: UTF8.self)
    }

    /// "TLSv1.3", "TLSv1.2", …
    public var version: String { String(cString: SSL_get_version(ssl)) }

    /// The negotiated cipher suite ("TLS_AES_256_GCM_SHA384").
    public var cipher: String? {
        guard let c = SSL_get_current_cipher(ssl), let name = SSL_CIPHER_get_name(c) else { return nil }
        return String(cString: name)
    }

    /// The session was resumed (ticket or session id).
    public var resumed: Bool { SSL_session_reused(ssl) == 1 }

    /// The peer certificate's subject, RFC 2253 ("CN=echo.test,O=Remora").
    public var peerCertificateSubject: String? {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        return Certificate.subject(cert)
    }

    /// The peer certificate's DNS and URI subject alternative names (a SPIFFE identity
    /// is a URI), in certificate order.
    public var peerSubjectAltNames: [String] {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return [] }
        defer { X509_free(cert) }
        return Certificate.subjectAltNames(cert).map(\.value)
    }
}
