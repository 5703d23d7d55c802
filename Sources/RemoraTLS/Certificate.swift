import COpenSSL

/// A name a peer certificate must carry (a DestinationRule's subjectAltNames entry).
enum PeerName: Sendable, Hashable {
    case dns(String)
    case ip(String)
    case uri(String)

    init(_ s: String) {
        if s.contains("://") { self = .uri(s) }
        else if s.contains(":") || (!s.isEmpty && s.allSatisfy { $0.isNumber || $0 == "." } && s.split(separator: ".").count == 4) { self = .ip(s) }
        else { self = .dns(s) }
    }
}

/// Reading an X509 (the peer's leaf).
enum Certificate {
    /// The subject in RFC 2253 form ("CN=echo.test,O=Remora").
    static func subject(_ cert: OpaquePointer) -> String? {
        guard let name = X509_get_subject_name(cert), let bio = BIO_new(BIO_s_mem()) else { return nil }
        defer { BIO_free(bio) }
        // XN_FLAG_RFC2253, spelled out: its ASN1_STRFLGS_RFC2253 part does not import.
        let strFlags = ASN1_STRFLGS_ESC_2253 | ASN1_STRFLGS_ESC_CTRL | ASN1_STRFLGS_ESC_MSB | ASN1_STRFLGS_UTF8_CONVERT | ASN1_STRFLGS_DUMP_UNKNOWN | ASN1_STRFLGS_DUMP_DER
        let flags = UInt(strFlags) | UInt(XN_FLAG_SEP_COMMA_PLUS) | UInt(XN_FLAG_DN_REV) | UInt(XN_FLAG_FN_SN) | UInt(XN_FLAG_DUMP_UNKNOWN_FIELDS)
        guard X509_NAME_print_ex(bio, name, 0, flags) >= 0 else { ERR_clear_error(); return nil }
        var p: UnsafeMutablePointer<CChar>?
        let n = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &p)
        guard n > 0, let p else { return "" }
        return UnsafeRawBufferPointer(start: p, count: n).withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) }
    }

    /// DNS names and URIs from subjectAltName, in certificate order.
    static func subjectAltNames(_ cert: OpaquePointer) -> [(isURI: Bool, value: String)] {
        guard let raw = X509_get_ext_d2i(cert, NID_subject_alt_name, nil, nil) else { return [] }
        let stack = OpaquePointer(raw)
        defer { GENERAL_NAMES_free(stack) }
        var out: [(Bool, String)] = []
        for i in 0..<OPENSSL_sk_num(stack) {
            guard let g = OPENSSL_sk_value(stack, i)?.assumingMemoryBound(to: GENERAL_NAME.self) else { continue }
            let type = g.pointee.type
            guard type == GEN_DNS || type == GEN_URI, let s = g.pointee.d.ia5 else { continue }
            guard let data = ASN1_STRING_get0_data(s) else { continue }
            let value = String(decoding: UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(s))), as: UTF8.self)
            out.append((type == GEN_URI, value))
        }
        return out
    }

    static func matches(_ cert: OpaquePointer, any names: [PeerName]) -> Bool {
        lazy var uris = subjectAltNames(cert).filter(\.isURI).map(\.value)
        for n in names {
            switch n {
            case .dns(let h):
                if X509_check_host(cert, h, h.utf8.count, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS), nil) == 1 { return true }
            case .ip(let a):
                if X509_check_ip_asc(cert, a, 0) == 1 { return true }
            case .uri(let u):
                if uris.contains(u) { return true }
            }
        }
        ERR_clear_error()
        return false
    }
}
