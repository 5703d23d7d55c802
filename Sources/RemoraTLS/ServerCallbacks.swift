import COpenSSL

/// OpenSSL's server-side callbacks. They find their Swift objects through ex_data
/// slot 0: the SSL's holds its TLSConnection, an SSL_CTX's its ServerEntry.
enum ServerCallbacks {
    /// Chooses the certificate by SNI before version negotiation, so the chosen entry's
    /// protocol versions, ciphers and client-certificate mode all apply (a servername
    /// callback runs too late for versions). Runs again for a ClientHello after
    /// HelloRetryRequest; choosing the same entry twice is harmless.
    static let clientHello: SSL_client_hello_cb_fn = { ssl, alert, _ in
        guard let ssl, let raw = SSL_get_ex_data(ssl, 0) else { return SSL_CLIENT_HELLO_SUCCESS }
        let conn = Unmanaged<TLSConnection>.fromOpaque(raw).takeUnretainedValue()
        guard let set = conn.serverSet else { return SSL_CLIENT_HELLO_SUCCESS }
        let sni = serverName(ssl)
        conn.serverName = sni
        let index = set.selector.select(sni)
        guard index != 0 else { return SSL_CLIENT_HELLO_SUCCESS }
        let e = set.entries[index]
        guard SSL_set_SSL_CTX(ssl, e.ctx) != nil else {
            alert?.pointee = Int32(SSL_AD_INTERNAL_ERROR)
            return SSL_CLIENT_HELLO_ERROR
        }
        // SSL_set_SSL_CTX swaps the certificate, verify store, CA names and session id
        // context; the settings copied into the SSL at SSL_new are set here.
        SSL_set_verify(ssl, e.verifyMode, nil)
        _ = SSL_ctrl(ssl, SSL_CTRL_SET_MIN_PROTO_VERSION, e.config.minVersion.openSSL, nil)
        _ = SSL_ctrl(ssl, SSL_CTRL_SET_MAX_PROTO_VERSION, e.config.maxVersion.openSSL, nil)
        SSL_set_security_level(ssl, SSL_CTX_get_security_level(e.ctx))
        if SSL_set_cipher_list(ssl, e.cipherList ?? String(cString: OSSL_default_cipher_list())) != 1 {
            ERR_clear_error()
        }
        return SSL_CLIENT_HELLO_SUCCESS
    }

    /// The host_name from the ClientHello's server_name extension (RFC 6066 §3).
    static func serverName(_ ssl: OpaquePointer) -> String? {
        var p: UnsafePointer<UInt8>?
        var len = 0
        guard SSL_client_hello_get0_ext(ssl, UInt32(TLSEXT_TYPE_server_name), &p, &len) == 1, let p else { return nil }
        let b = UnsafeBufferPointer(start: p, count: len)
        guard b.count >= 2 else { return nil }
        let listLen = Int(b[0]) << 8 | Int(b[1])
        var i = 2
        let end = min(b.count, 2 + listLen)
        while i + 3 <= end {
            let type = b[i]
            let n = Int(b[i + 1]) << 8 | Int(b[i + 2])
            i += 3
            guard i + n <= end else { return nil }
            if type == 0 { return String(decoding: b[i..<(i + n)], as: UTF8.self) }
            i += n
        }
        return nil
    }

    /// Acknowledges SNI (so it is recorded in the session); the choice was made in
    /// clientHello.
    static let serverName: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32 = { _, _, _ in
        SSL_TLSEXT_ERR_OK
    }

    /// ALPN with the server's preference: the first of our names the client offers.
    static let alpnSelect: SSL_CTX_alpn_select_cb_func = { _, out, outlen, input, inlen, arg in
        guard let arg, let out, let outlen, let input else { return SSL_TLSEXT_ERR_NOACK }
        let entry = Unmanaged<ServerEntry>.fromOpaque(arg).takeUnretainedValue()
        let offered = UnsafeBufferPointer(start: input, count: Int(inlen))
        return entry.alpn.withUnsafeBufferPointer { ours -> Int32 in
            var i = 0
            while i < ours.count {
                let n = Int(ours[i])
                let name = ours[(i + 1)..<(i + 1 + n)]
                var j = 0
                while j < offered.count {
                    let m = Int(offered[j])
                    if j + 1 + m > offered.count { break }
                    if m == n && offered[(j + 1)..<(j + 1 + m)].elementsEqual(name) {
                        // Points into the client's list, which OpenSSL copies from.
                        out.pointee = input + j + 1
                        outlen.pointee = UInt8(m)
                        return SSL_TLSEXT_ERR_OK
                    }
                    j += 1 + m
                }
                i += 1 + n
            }
            // No common protocol: carry on without ALPN (the preface still tells h2).
            return SSL_TLSEXT_ERR_NOACK
        }
    }
}
