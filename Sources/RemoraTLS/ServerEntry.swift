import COpenSSL

/// One built server SSL_CTX (a certificate and its settings), shared by every worker
/// thread. Immutable once built: a reload builds a new one. The settings that
/// SSL_set_SSL_CTX does not carry over to a connection are kept here, to be applied
/// when SNI selects this entry.
final class ServerEntry: @unchecked Sendable {
    let ctx: OpaquePointer
    let config: TLSServerConfig
    /// Identities of the files this context was built from (a changed one means rebuild).
    let files: [(path: String, identity: FileIdentity?)]
    let verifyMode: Int32
    /// ALPN names in wire format, server preference order.
    let alpn: [UInt8]
    /// nil: OpenSSL's default list.
    let cipherList: String?

    init(index: Int, config: TLSServerConfig) throws(TLSError) {
        self.config = config
        // Identities before reading: a file replaced while it is being read is seen as
        // changed again on the next reload, never as current.
        var paths = [config.certificateFile, config.privateKeyFile]
        if let ca = config.caFile { paths.append(ca) }
        files = paths.map { ($0, FileIdentity(path: $0)) }
        alpn = try ContextSetup.alpnWire(config.alpn)
        cipherList = config.cipherSuites.isEmpty ? nil : config.cipherSuites.joined(separator: ":")
        if config.clientAuth != .none && config.caFile == nil {
            throw TLSError("client certificate verification (\(config.clientAuth == .required ? "MUTUAL" : "OPTIONAL_MUTUAL")) needs a CA file")
        }
        verifyMode = switch config.clientAuth {
        case .none: SSL_VERIFY_NONE
        case .optional: SSL_VERIFY_PEER
        case .required: SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
        }

        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw TLSError("SSL_CTX_new: \(OpenSSLError.drain())")
        }
        do {
            try ServerEntry.configure(ctx, index: index, config: config, verifyMode: verifyMode)
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        self.ctx = ctx

        _ = SSL_CTX_set_ex_data(ctx, 0, Unmanaged.passUnretained(self).toOpaque())
        SSL_CTX_set_client_hello_cb(ctx, ServerCallbacks.clientHello, nil)
        _ = SSL_CTX_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_SERVERNAME_CB,
                                  unsafeBitCast(ServerCallbacks.serverName, to: (@convention(c) () -> Void).self))
        if !alpn.isEmpty {
            SSL_CTX_set_alpn_select_cb(ctx, ServerCallbacks.alpnSelect, Unmanaged.passUnretained(self).toOpaque())
        }
    }

    private static func configure(_ ctx: OpaquePointer, index: Int, config: TLSServerConfig,
                                  verifyMode: Int32) throws(TLSError) {
        try ContextSetup.common(ctx, min: config.minVersion, max: config.maxVersion)
        _ = SSL_CTX_set_options(ctx, ContextSetup.opCipherServerPreference)
        try ContextSetup.cipherList(ctx, config.cipherSuites)
        try ContextSetup.certificate(ctx, cert: config.certificateFile, key: config.privateKeyFile)
        if let ca = config.caFile, config.clientAuth != .none {
            try ContextSetup.verifyLocations(ctx, caFile: ca)
            // The CA names go into CertificateRequest, so a client picks the right cert.
            if let names = SSL_load_client_CA_file(ca) { SSL_CTX_set_client_CA_list(ctx, names) }
            ERR_clear_error()
        }
        SSL_CTX_set_verify(ctx, verifyMode, nil)
        // Resumption: tickets are on by default. The session id context is required to
        // resume sessions with a verified client certificate, and keeps one
        // certificate's sessions from resuming under another.
        let sid = Array("remora-tls-\(index)".utf8)
        _ = SSL_CTX_set_session_id_context(ctx, sid, UInt32(sid.count))
    }

    deinit { SSL_CTX_free(ctx) }

    /// The files whose identity differs from the one this context was built from.
    func changedFiles() -> [String] {
        files.filter { FileIdentity(path: $0.path) != $0.identity }.map(\.path)
    }
}
