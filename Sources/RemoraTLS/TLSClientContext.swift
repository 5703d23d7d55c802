import COpenSSL
import RemoraIO

/// Originates TLS to upstreams with one configuration (a DestinationRule's `tls`).
/// Built on the control thread, shared by every worker; keeps the most recent session
/// so that reconnects resume.
public final class TLSClientContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let config: TLSClientConfig
    /// Names checked by our verify callback (set when any is an IP or a URI, which
    /// OpenSSL's host list cannot express); nil: OpenSSL checks the DNS names.
    let namesToMatch: [PeerName]?
    private let sessionLock = Lock()
    private var lastSession: OpaquePointer?

    public init(_ config: TLSClientConfig) throws(TLSError) {
        self.config = config
        let names = config.subjectAltNames.map(PeerName.init)
        let dnsOnly = names.allSatisfy { if case .dns = $0 { true } else { false } }
        namesToMatch = config.insecureSkipVerify || dnsOnly ? nil : names
        let alpn = try ContextSetup.alpnWire(config.alpn)
        guard (config.certificateFile == nil) == (config.privateKeyFile == nil) else {
            throw TLSError("a client certificate needs both the certificate and the private key file")
        }
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError("SSL_CTX_new: \(OpenSSLError.drain())")
        }
        do {
            try TLSClientContext.configure(ctx, config: config, alpn: alpn,
                                           dnsNames: namesToMatch == nil && !config.insecureSkipVerify ? config.subjectAltNames : [],
                                           customVerify: namesToMatch != nil)
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        self.ctx = ctx
        _ = SSL_CTX_set_ex_data(ctx, 0, Unmanaged.passUnretained(self).toOpaque())
        // Sessions reach us through the callback: a TLS 1.3 ticket arrives after the
        // handshake, so taking SSL_get1_session at handshake end would miss it.
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, Int(SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE), nil)
        SSL_CTX_sess_set_new_cb(ctx, ClientCallbacks.newSession)
    }

    private static func configure(_ ctx: OpaquePointer, config: TLSClientConfig, alpn: [UInt8],
                                  dnsNames: [String], customVerify: Bool) throws(TLSError) {
        try ContextSetup.common(ctx, min: config.minVersion, max: config.maxVersion)
        if let cert = config.certificateFile, let key = config.privateKeyFile {
            try ContextSetup.certificate(ctx, cert: cert, key: key)
        }
        if config.insecureSkipVerify {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        } else {
            if let ca = config.caFile {
                try ContextSetup.verifyLocations(ctx, caFile: ca)
            } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
                throw TLSError("system CA store: \(OpenSSLError.drain())")
            }
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, customVerify ? ClientCallbacks.verify : nil)
            // SSL_new copies these hosts into each connection's parameters.
            if let param = SSL_CTX_get0_param(ctx), !dnsNames.isEmpty {
                X509_VERIFY_PARAM_set_hostflags(param, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
                for (i, n) in dnsNames.enumerated() {
                    let ok = i == 0 ? X509_VERIFY_PARAM_set1_host(param, n, 0) : X509_VERIFY_PARAM_add1_host(param, n, 0)
                    if ok != 1 { throw TLSError("subject alt name '\(n)': \(OpenSSLError.drain())") }
                }
            }
        }
        // Unlike the rest of SSL_*, this one returns 0 on success.
        if !alpn.isEmpty, SSL_CTX_set_alpn_protos(ctx, alpn, UInt32(alpn.count)) != 0 {
            throw TLSError("ALPN \(config.alpn): \(OpenSSLError.drain())")
        }
    }

    deinit {
        if let s = lastSession { SSL_SESSION_free(s) }
        SSL_CTX_free(ctx)
    }

    /// A client connection on a connected (or connecting) non-blocking fd: SNI,
    /// peer-name verification and ALPN from the config, resuming the last session.
    /// The fd stays the caller's to close.
    public func connection(fd: Int32) -> TLSConnection? {
        guard let ssl = ContextSetup.newSSL(ctx, fd: fd) else { return nil }
        SSL_set_connect_state(ssl)
        if let sni = config.sni, !sni.isEmpty {
            _ = sni.withCString { SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: $0)) }
        }
        sessionLock.withLock {
            if let s = lastSession, SSL_SESSION_is_resumable(s) == 1 { _ = SSL_set_session(ssl, s) }
        }
        ERR_clear_error()
        return TLSConnection(ssl: ssl, serverSet: nil, client: self)
    }

    /// Forgets the saved session (e.g. after the upstream's certificate changed).
    public func forgetSession() { store(nil) }

    func store(_ session: OpaquePointer?) {
        let old = sessionLock.withLock { () -> OpaquePointer? in
            let old = lastSession
            lastSession = session
            return old
        }
        if let old { SSL_SESSION_free(old) }
    }
}

enum ClientCallbacks {
    /// A new session (TLS 1.2 at handshake end, TLS 1.3 per ticket): keep it; returning
    /// 1 hands us its reference.
    static let newSession: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32 = { ssl, session in
        guard let ssl, let session, let ctx = SSL_get_SSL_CTX(ssl), let raw = SSL_CTX_get_ex_data(ctx, 0) else { return 0 }
        Unmanaged<TLSClientContext>.fromOpaque(raw).takeUnretainedValue().store(session)
        return 1
    }

    /// Checks the leaf against names OpenSSL's host list cannot hold (IPs, URIs): any
    /// one matching accepts it. Runs after the chain verified.
    static let verify: @convention(c) (Int32, OpaquePointer?) -> Int32 = { ok, store in
        guard ok == 1, let store, X509_STORE_CTX_get_error_depth(store) == 0,
              let cert = X509_STORE_CTX_get_current_cert(store),
              let ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
              let ctx = SSL_get_SSL_CTX(OpaquePointer(ssl)), let raw = SSL_CTX_get_ex_data(ctx, 0) else { return ok }
        let client = Unmanaged<TLSClientContext>.fromOpaque(raw).takeUnretainedValue()
        guard let names = client.namesToMatch, !names.isEmpty else { return ok }
        if Certificate.matches(cert, any: names) { return 1 }
        X509_STORE_CTX_set_error(store, X509_V_ERR_HOSTNAME_MISMATCH)
        return 0
    }
}
