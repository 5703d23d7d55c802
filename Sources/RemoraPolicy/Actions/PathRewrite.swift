import RemoraConfig

/// `rewrite.uri` / `rewrite.uriRegexRewrite`, as Envoy applies Istio's prefix_rewrite / regex_rewrite.
enum PathRewrite: Sendable {
    /// prefix_rewrite: replaces what the route matched — the matched prefix for a prefix match (Istio's
    /// rules without a `uri` condition are Envoy prefix "/" routes), else the whole path; the query stays.
    case uri(String)
    /// regex_rewrite: every match in the path without its query replaced; the query stays.
    case regex(RegexRewriter)

    static func compile(_ r: HTTPRewrite?, path: String, fail: (String, String) -> Void) -> PathRewrite? {
        guard let r else { return nil }
        if let rr = r.uriRegexRewrite {
            switch RegexRewriter.compile(pattern: rr.match, substitution: rr.rewrite) {
            case .success(let x): return .regex(x)
            case .failure(let e): fail("\(path).uriRegexRewrite.\(e.field)", e.message); return nil
            }
        }
        // Istio ignores an empty uri.
        if let u = r.uri, !u.isEmpty { return .uri(u) }
        return nil
    }

    func apply(_ path: String, matchedPrefix: String?) -> String {
        let pathEnd = PathRewrite.pathEnd(path)
        switch self {
        case .uri(let u):
            if let p = matchedPrefix, PathRewrite.hasPrefixIgnoringCase(path, p) {
                // Same length as the matched bytes (ignoreUriCase matches in any case).
                return u + String(decoding: path.utf8.dropFirst(p.utf8.count), as: UTF8.self)
            }
            return u + path[pathEnd...]
        case .regex(let re):
            return re.replaceAll(path[..<pathEnd]) + path[pathEnd...]
        }
    }

    /// Where the path proper ends: at the query or fragment (Envoy's removeQueryAndFragment).
    static func pathEnd(_ path: String) -> String.Index {
        path.firstIndex { $0 == "?" || $0 == "#" } ?? path.endIndex
    }

    static func hasPrefixIgnoringCase(_ s: String, _ prefix: String) -> Bool {
        if s.hasPrefix(prefix) { return true }
        guard s.utf8.count >= prefix.utf8.count else { return false }
        return zip(s.utf8, prefix.utf8).allSatisfy { asciiLower($0) == asciiLower($1) }
    }

    @inline(__always) static func asciiLower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
}
