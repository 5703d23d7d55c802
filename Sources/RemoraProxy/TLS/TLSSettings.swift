#if canImport(Glibc)
import Glibc
#endif
import RemoraConfig
import RemoraCore
import RemoraPolicy
import RemoraTLS

/// Istio's TLS settings as OpenSSL contexts: a Gateway listener's server certificates
/// (files or a `credentialName` under `credentialsDir`), and a DestinationRule's upstream
/// origination. Built on the control thread; workers only create connections from them.
enum TLSSettings {
    /// The server context of a listener whose servers terminate TLS (SNI picks among them).
    static func serverContext(_ spec: ListenerSpec, credentialsDir: String) throws(TLSError) -> TLSServerContext {
        var entries: [(hosts: [String], config: TLSServerConfig)] = []
        for ref in spec.servers {
            guard ref.server.terminatesTLS, let tls = ref.server.tls else { continue }
            // PASSTHROUGH servers forward the TLS bytes untouched (TCP proxying, not served here).
            if tls.mode == "PASSTHROUGH" || tls.mode == "AUTO_PASSTHROUGH" { continue }
            if tls.mode == "ISTIO_MUTUAL" {
                throw TLSError(description: "\(ref.gateway) spec.servers[\(ref.index)]: ISTIO_MUTUAL needs mesh certificates, which this proxy does not have")
            }
            var files: (cert: String, key: String, ca: String?)
            if let name = tls.credentialName ?? tls.credentialNames.first {
                files = try credentialFiles(name, dir: credentialsDir)
            } else {
                files = (tls.serverCertificate ?? "", tls.privateKey ?? "", nil)
            }
            if let ca = tls.caCertificates { files.ca = ca }
            var config = TLSServerConfig(certificateFile: files.cert, privateKeyFile: files.key)
            config.caFile = files.ca
            switch tls.mode {
            case "MUTUAL": config.clientAuth = .required
            case "OPTIONAL_MUTUAL": config.clientAuth = .optional
            default: config.clientAuth = .none
            }
            if config.clientAuth != .none && config.caFile == nil {
                throw TLSError(description: "\(ref.gateway) spec.servers[\(ref.index)]: \(tls.mode ?? "") needs caCertificates or a credential with ca.crt")
            }
            if let v = version(tls.minProtocolVersion) { config.minVersion = v }
            if let v = version(tls.maxProtocolVersion) { config.maxVersion = v }
            config.cipherSuites = tls.cipherSuites
            // HTTP/2 by ALPN for HTTPS, HTTP2 and GRPC servers alike (Envoy's gateway offers both).
            config.alpn = ["h2", "http/1.1"]
            entries.append((ref.server.hosts.map(hostPart), config))
        }
        guard !entries.isEmpty else { throw TLSError(description: "listener \(spec.name): no server terminates TLS") }
        return try TLSServerContext(entries: entries)
    }

    /// The two layouts a Kubernetes TLS or generic secret takes when mounted as files.
    static func credentialFiles(_ name: String, dir: String) throws(TLSError) -> (cert: String, key: String, ca: String?) {
        let base = dir.hasSuffix("/") ? dir + name : dir + "/" + name
        func exists(_ p: String) -> Bool { access(p, R_OK) == 0 }
        if exists(base + "/tls.crt") && exists(base + "/tls.key") {
            return (base + "/tls.crt", base + "/tls.key", exists(base + "/ca.crt") ? base + "/ca.crt" : nil)
        }
        if exists(base + "/cert") && exists(base + "/key") {
            let ca = [base + "/cacert", base + "/ca.crt"].first(where: exists)
            return (base + "/cert", base + "/key", ca)
        }
        throw TLSError(description: "credential \(name): neither tls.crt/tls.key nor cert/key readable under \(base)")
    }

    /// "ns/host" or "*/host" in a Gateway server's hosts: the host part.
    static func hostPart(_ h: String) -> String {
        guard let slash = h.firstIndex(of: "/") else { return h }
        return String(h[h.index(after: slash)...])
    }

    static func version(_ v: String?) -> TLSVersion? {
        switch v {
        case "TLSV1_0": .tls1_0
        case "TLSV1_1": .tls1_1
        case "TLSV1_2": .tls1_2
        case "TLSV1_3": .tls1_3
        default: nil   // TLS_AUTO or absent: the defaults (1.2 minimum, 1.3 preferred)
        }
    }

    /// The client contexts of a cluster with `trafficPolicy.tls` SIMPLE or MUTUAL: one
    /// offering h2 by ALPN and one offering http/1.1, so either protocol can be spoken.
    static func clientContexts(_ spec: ClusterSpec, credentialsDir: String) -> UpstreamTLS? {
        guard let tls = spec.trafficPolicy?.tls, let mode = tls.mode, mode == "SIMPLE" || mode == "MUTUAL" else { return nil }
        do {
            var config = TLSClientConfig()
            config.caFile = tls.caCertificates
            config.certificateFile = tls.clientCertificate
            config.privateKeyFile = tls.privateKey
            if mode == "MUTUAL", let name = tls.credentialName {
                let files = try credentialFiles(name, dir: credentialsDir)
                config.certificateFile = files.cert
                config.privateKeyFile = files.key
                if config.caFile == nil { config.caFile = files.ca }
            }
            config.sni = tls.sni ?? (isIPAddress(spec.host) ? nil : spec.host)
            config.subjectAltNames = tls.subjectAltNames
            config.insecureSkipVerify = tls.insecureSkipVerify ?? false
            var h2 = config
            h2.alpn = ["h2"]
            config.alpn = ["http/1.1"]
            return UpstreamTLS(http1: try TLSClientContext(config), http2: try TLSClientContext(h2))
        } catch {
            Log.error("cluster \(spec.name): upstream TLS: \(error); its requests fail (UF)")
            return UpstreamTLS(http1: nil, http2: nil)
        }
    }

    private static func isIPAddress(_ h: String) -> Bool {
        h.contains(":") || h.allSatisfy { $0.isNumber || $0 == "." }
    }
}

/// Upstream TLS of one cluster. nil contexts: the settings could not be loaded, and
/// connections fail rather than fall back to plain text.
public struct UpstreamTLS: @unchecked Sendable {
    let http1: TLSClientContext?
    let http2: TLSClientContext?
}
