import RemoraConfig

/// A `redirect` rule as Istio's ApplyRedirect configures Envoy's RedirectAction, and as Envoy builds
/// the Location from it.
struct CompiledRedirect: Sendable {
    var status: Int
    /// path_redirect: replaces the whole path, whatever the match was (Istio: "the entire path will be
    /// replaced, irrespective of the request URI being matched as an exact path or prefix").
    var uri: String?
    var authority: String?
    var scheme: String?
    var port: Int?
    var derivePort: String?

    init(_ r: HTTPRedirect) {
        status = r.redirectCode ?? 301
        uri = r.uri.flatMap { $0.isEmpty ? nil : $0 }
        authority = r.authority.flatMap { $0.isEmpty ? nil : $0 }
        scheme = r.scheme.flatMap { $0.isEmpty ? nil : $0 }
        port = r.port
        derivePort = r.derivePort
    }

    /// `listenerPort` is what Istio substitutes for FROM_REQUEST_PORT (it builds routes per listener
    /// port); without it the authority's port is used, else the request scheme's default.
    func location(scheme requestScheme: String, authority requestAuthority: String, path: String, listenerPort: Int?) -> String {
        let finalScheme = scheme ?? requestScheme
        // Istio: an explicit port, or FROM_REQUEST_PORT; none for FROM_PROTOCOL_DEFAULT (Envoy's default).
        var newPort: Int?
        if let port {
            newPort = port
        } else if derivePort == "FROM_REQUEST_PORT" {
            newPort = listenerPort ?? Self.port(of: requestAuthority) ?? (requestScheme == "https" ? 443 : 80)
        }
        if port != nil || derivePort != nil {
            // "Do not put explicit :80 or :443 when its http/https" (scheme as configured, else the request's).
            if newPort == 80 && finalScheme == "http" { newPort = nil }
            if newPort == 443 && finalScheme == "https" { newPort = nil }
        }
        let host = authority ?? Self.processRequestHost(requestAuthority, newScheme: finalScheme, hasNewPort: newPort != nil,
                                                         requestScheme: requestScheme)
        var finalPath: String
        if let uri {
            // A query in the configured uri wins; otherwise the request's query is kept.
            if uri.contains("?") {
                finalPath = uri
            } else if let q = path.firstIndex(of: "?") {
                finalPath = uri + path[q...]
            } else {
                finalPath = uri
            }
        } else {
            finalPath = path
        }
        if !finalPath.hasPrefix("/") { finalPath = "/" + finalPath }
        return "\(finalScheme)://\(host)\(newPort.map { ":\($0)" } ?? "")\(finalPath)"
    }

    /// Envoy's processRequestHost: the request's host, without its port when a new port is given, or
    /// when the scheme changes and the port was the old scheme's default.
    static func processRequestHost(_ host: String, newScheme: String, hasNewPort: Bool, requestScheme: String) -> String {
        guard let colon = portColon(host) else { return host }
        let port = host[host.index(after: colon)...]
        var remove = hasNewPort
        if newScheme != requestScheme {
            remove = remove || (requestScheme == "https" && port == "443") || (requestScheme == "http" && port == "80")
        }
        return remove ? String(host[..<colon]) : host
    }

    /// The ':' before the port, with IPv6 literals ("[::1]:8080") handled.
    static func portColon(_ host: String) -> String.Index? {
        if host.hasPrefix("[") {
            guard let close = host.lastIndex(of: "]") else { return nil }
            let after = host.index(after: close)
            return after < host.endIndex && host[after] == ":" ? after : nil
        }
        return host.lastIndex(of: ":")
    }

    static func port(of authority: String) -> Int? {
        portColon(authority).flatMap { Int(authority[authority.index(after: $0)...]) }
    }
}
