import COpenSSL

/// The SSL_CTX settings both sides share. OpenSSL's setter macros (SSL_CTX_set_mode,
/// SSL_CTX_set_min_proto_version, …) do not import into Swift, so they are spelled as
/// the SSL_CTX_ctrl calls they expand to.
enum ContextSetup {
    /// A connection's SSL over `fd` (nil on an OpenSSL allocation error, its error cleared
    /// so it never shows in another connection's message).
    static func newSSL(_ ctx: OpaquePointer, fd: Int32) -> OpaquePointer? {
        guard let ssl = SSL_new(ctx) else {
            ERR_clear_error()
            return nil
        }
        guard SSL_set_fd(ssl, fd) == 1 else {
            SSL_free(ssl)
            ERR_clear_error()
            return nil
        }
        return ssl
    }

    // SSL_OP_BIT(n) does not import either.
    static let opIgnoreUnexpectedEOF: UInt64 = 1 << 7
    static let opCipherServerPreference: UInt64 = 1 << 22
    static let opNoRenegotiation: UInt64 = 1 << 30

    static func common(_ ctx: OpaquePointer, min: TLSVersion, max: TLSVersion) throws(TLSError) {
        guard min.openSSL <= max.openSSL else { throw TLSError("minimum TLS version above the maximum") }
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, min.openSSL, nil)
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MAX_PROTO_VERSION, max.openSSL, nil)
        // OpenSSL 3 rates TLS 1.0/1.1's SHA-1 signatures below security level 1, so an
        // explicit request for them needs level 0 or they are never offered.
        if min.openSSL < TLSVersion.tls1_2.openSSL { SSL_CTX_set_security_level(ctx, 0) }
        // Partial writes and a moving buffer: the caller's ByteBuffer compacts between
        // retries. Released buffers: an idle connection holds no 34 KB record buffers.
        let mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, Int(mode), nil)
        // Read-ahead: one read(2) fills the record buffer instead of two per record.
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_SET_READ_AHEAD, 1, nil)
        // A TCP FIN without close_notify is an ordinary EOF (HTTP frames its own
        // messages); renegotiation is refused (a CPU-exhaustion vector, and HTTP/2
        // forbids it).
        _ = SSL_CTX_set_options(ctx, opIgnoreUnexpectedEOF | opNoRenegotiation)
        // An encrypted key must fail to load, not prompt on the terminal.
        SSL_CTX_set_default_passwd_cb(ctx, noPassword)
    }

    static func cipherList(_ ctx: OpaquePointer, _ suites: [String]) throws(TLSError) {
        guard !suites.isEmpty else { return }
        let list = suites.joined(separator: ":")
        if SSL_CTX_set_cipher_list(ctx, list) != 1 {
            throw TLSError("cipher suites '\(list)': \(OpenSSLError.drain())")
        }
    }

    /// Loads a certificate chain and its key (the key is named by path only).
    static func certificate(_ ctx: OpaquePointer, cert: String, key: String) throws(TLSError) {
        if SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 {
            throw TLSError("certificate \(cert): \(OpenSSLError.drain())")
        }
        if SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 {
            throw TLSError("private key \(key) (for certificate \(cert)): \(OpenSSLError.drain())")
        }
        if SSL_CTX_check_private_key(ctx) != 1 {
            throw TLSError("private key \(key) does not match certificate \(cert): \(OpenSSLError.drain())")
        }
    }

    static func verifyLocations(_ ctx: OpaquePointer, caFile: String) throws(TLSError) {
        if SSL_CTX_load_verify_locations(ctx, caFile, nil) != 1 {
            throw TLSError("CA file \(caFile): \(OpenSSLError.drain())")
        }
    }

    /// ALPN's wire format: each name prefixed by its length.
    static func alpnWire(_ names: [String]) throws(TLSError) -> [UInt8] {
        var out: [UInt8] = []
        for n in names {
            let b = Array(n.utf8)
            guard !b.isEmpty, b.count <= 255 else { throw TLSError("ALPN protocol name '\(n)' must be 1-255 bytes") }
            out.append(UInt8(b.count))
            out += b
        }
        return out
    }
}

private let noPassword: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32 = { _, _, _, _ in 0 }
