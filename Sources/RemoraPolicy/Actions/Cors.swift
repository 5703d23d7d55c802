import RemoraConfig

public enum PreflightResult: Sendable {
    case notPreflight
    /// Answer 200 with these headers, without forwarding.
    case respond(headers: [(String, String)])
    case forward
}

/// A rule's `corsPolicy` as Envoy's CORS filter applies it (Istio's TranslateCORSPolicy: lists joined with
/// ",", maxAge in whole seconds, `allowOrigins` else the deprecated exact `allowOrigin`).
public struct CompiledCors: Sendable {
    let origins: [StringMatcher]
    /// Some matcher accepts the literal "*" (decided once, not per request).
    let allowsAny: Bool
    let allowMethods: String
    let allowHeaders: String
    let exposeHeaders: String
    let maxAge: String?
    let allowCredentials: Bool
    /// `unmatchedPreflights`: FORWARD (and unset) forwards, IGNORE answers locally.
    let forwardUnmatched: Bool

    static func compile(_ p: CorsPolicy?, path: String, fail: (String, String) -> Void) -> CompiledCors? {
        guard let p else { return nil }
        var origins: [StringMatcher] = []
        if !p.allowOrigins.isEmpty {
            // `{}` (no matcher) is skipped, as Istio's ConvertToEnvoyMatches does.
            for (i, m) in p.allowOrigins.enumerated() where m != .present {
                switch StringMatcher.compile(m) {
                case .success(let x): origins.append(x)
                case .failure(let e): fail("\(path).allowOrigins[\(i)].regex", e.message)
                }
            }
        } else {
            origins = p.allowOrigin.map { .exact($0) }
        }
        return CompiledCors(origins: origins, allowsAny: origins.contains { $0.matches("*") },
                            allowMethods: p.allowMethods.joined(separator: ","), allowHeaders: p.allowHeaders.joined(separator: ","), exposeHeaders: p.exposeHeaders.joined(separator: ","),
                            maxAge: p.maxAge.map { String($0.nanoseconds / 1_000_000_000) }, allowCredentials: p.allowCredentials ?? false,
                            forwardUnmatched: p.unmatchedPreflights != "IGNORE")
    }

    /// Envoy: a matcher that accepts the literal "*" accepts every origin (so `exact: "*"`, `prefix: ""`,
    /// `regex: ".*"` all allow any origin).
    func allows(_ origin: String) -> Bool {
        allowsAny || origins.contains { $0.matches(origin) }
    }

    /// An OPTIONS request with Origin and Access-Control-Request-Method is a preflight. Allowed origin: .respond with the
    /// Access-Control-Allow-* headers (Envoy's CORS filter). Not allowed: Istio's `unmatchedPreflights` (FORWARD default
    /// / IGNORE) decides .forward or .respond without Access-Control-Allow-Origin. (Envoy still sends the
    /// -Methods/-Headers/-Max-Age/-Credentials headers in that answer; they grant nothing without the origin.)
    public func preflight(method: String, origin: String?, requestMethod: String?, requestHeaders: String?) -> PreflightResult {
        guard method == "OPTIONS", let origin, !origin.isEmpty, let requestMethod, !requestMethod.isEmpty else { return .notPreflight }
        let allowed = allows(origin)
        if !allowed && forwardUnmatched { return .forward }
        var h: [(String, String)] = []
        if allowed { h.append(("access-control-allow-origin", origin)) }
        if allowCredentials { h.append(("access-control-allow-credentials", "true")) }
        if !allowMethods.isEmpty { h.append(("access-control-allow-methods", allowMethods == "*" ? requestMethod : allowMethods)) }
        if !allowHeaders.isEmpty {
            if allowHeaders != "*" {
                h.append(("access-control-allow-headers", allowHeaders))
            } else if let rh = requestHeaders, !rh.isEmpty {
                h.append(("access-control-allow-headers", rh))  // "*" echoes what was asked for
            }
        }
        if let maxAge { h.append(("access-control-max-age", maxAge)) }
        return .respond(headers: h)
    }

    /// Headers to add to an actual (non-preflight) response for this origin: access-control-allow-origin, -allow-credentials,
    /// -expose-headers; empty when the origin is not allowed or absent.
    public func responseHeaders(origin: String?) -> [(String, String)] {
        guard let origin, !origin.isEmpty, allows(origin) else { return [] }
        var h: [(String, String)] = [("access-control-allow-origin", origin)]
        if allowCredentials { h.append(("access-control-allow-credentials", "true")) }
        if !exposeHeaders.isEmpty { h.append(("access-control-expose-headers", exposeHeaders)) }
        return h
    }
}
