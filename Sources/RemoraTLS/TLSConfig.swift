/// Protocol versions, as Istio names them (`TLSV1_0` … `TLSV1_3`).
public enum TLSVersion: Sendable, Hashable {
    case tls1_0, tls1_1, tls1_2, tls1_3

    /// OpenSSL's wire value (TLS1_VERSION …).
    var openSSL: Int {
        switch self {
        case .tls1_0: 0x0301
        case .tls1_1: 0x0302
        case .tls1_2: 0x0303
        case .tls1_3: 0x0304
        }
    }
}

/// How a server asks for client certificates: SIMPLE, OPTIONAL_MUTUAL, MUTUAL.
public enum TLSClientAuth: Sendable, Hashable { case none, optional, required }

/// One server certificate and its settings (a Gateway server's `tls`).
public struct TLSServerConfig: Sendable, Hashable {
    public var certificateFile: String
    public var privateKeyFile: String
    /// CA for client certificates (MUTUAL / OPTIONAL_MUTUAL).
    public var caFile: String?
    public var clientAuth: TLSClientAuth = .none
    /// Istio's TLS_AUTO on a gateway: 1.2 minimum.
    public var minVersion: TLSVersion = .tls1_2
    public var maxVersion: TLSVersion = .tls1_3
    /// OpenSSL names for TLS 1.2 and below (SSL_CTX_set_cipher_list); empty: OpenSSL's defaults.
    /// TLS 1.3 suites are not affected (as in Envoy).
    public var cipherSuites: [String] = []
    /// Server preference order.
    public var alpn: [String] = ["h2", "http/1.1"]

    public init(certificateFile: String, privateKeyFile: String) {
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
    }
}

/// How to originate TLS to an upstream (a DestinationRule's `tls`).
public struct TLSClientConfig: Sendable, Hashable {
    /// nil: the system store.
    public var caFile: String?
    /// Client certificate (MUTUAL).
    public var certificateFile: String?
    public var privateKeyFile: String?
    /// SNI to send (nil: none). Not used for verification (Istio's behaviour).
    public var sni: String?
    /// Accepted peer names: DNS names (SAN or CN, `*.x` wildcards in the certificate
    /// honoured), IP addresses, or URIs such as `spiffe://…` (URI SAN, exact).
    /// Empty: the chain is verified, no name.
    public var subjectAltNames: [String] = []
    public var insecureSkipVerify = false
    /// e.g. ["h2"] or ["http/1.1"]; empty: no ALPN.
    public var alpn: [String] = []
    public var minVersion: TLSVersion = .tls1_2
    public var maxVersion: TLSVersion = .tls1_3

    public init() {}
}
