/// Host name rules shared by validation and routing: Kubernetes short names and `*` wildcards.
public enum HostNames {
    /// Every name a Kubernetes-style host is known by, lowercased. A short name in namespace
    /// `default` ("adservice") is also "adservice.default", "adservice.default.svc" and
    /// "adservice.default.svc.cluster.local"; the long forms give the short one back only in
    /// their own namespace (where a pod's resolver search path would produce it). Anything
    /// else (an external name, a wildcard) is only itself.
    public static func aliases(_ host: String, namespace: String) -> [String] {
        let h = normalize(host)
        if h.hasPrefix("*") || h.isEmpty { return [h] }
        let labels = h.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let name: String
        let ns: String
        switch labels.count {
        case 1:
            name = labels[0]; ns = namespace.lowercased()
        case 2:
            name = labels[0]; ns = labels[1]
        case 3 where labels[2] == "svc":
            name = labels[0]; ns = labels[1]
        case 5 where labels[2] == "svc" && labels[3] == "cluster" && labels[4] == "local":
            name = labels[0]; ns = labels[1]
        default:
            return [h]
        }
        var out = ["\(name).\(ns)", "\(name).\(ns).svc", "\(name).\(ns).svc.cluster.local"]
        if ns == namespace.lowercased() { out.insert(name, at: 0) }
        if !out.contains(h) { out.insert(h, at: 0) }
        return out
    }

    /// The fully qualified form used in cluster names: short names expand into their namespace.
    public static func fqdn(_ host: String, namespace: String) -> String {
        let all = aliases(host, namespace: namespace)
        return all.first { $0.hasSuffix(".svc.cluster.local") } ?? normalize(host)
    }

    /// Lowercased, trailing dot removed.
    public static func normalize(_ host: String) -> String {
        var h = host.lowercased()
        if h.hasSuffix(".") && h.count > 1 { h.removeLast() }
        return h
    }

    /// `*` matches everything, `*.example.com` any name ending in ".example.com" (not the bare
    /// domain), anything else must be equal. Both sides already normalized.
    public static func wildcardMatches(pattern: String, host: String) -> Bool {
        if pattern == "*" { return true }
        if pattern.hasPrefix("*") {
            let suffix = pattern.dropFirst()  // ".example.com" (or "example.com" for "*example.com")
            return host.count > suffix.count && host.hasSuffix(suffix)
        }
        return pattern == host
    }

    /// Whether two hosts, each written in its resource's namespace, name the same service, or a
    /// wildcard on either side covers the other.
    /// The names two exact hosts are compared by: `sameService` holds for two exact hosts
    /// exactly when these sets intersect (a bare short name means different services in
    /// different namespaces). Lets callers index hosts instead of comparing pairs.
    public static func qualifiedNames(_ host: String, namespace: String) -> [String] {
        let all = aliases(normalize(host), namespace: namespace)
        let q = all.filter { $0.contains(".") }
        return q.isEmpty ? all : q
    }

    public static func sameService(_ a: String, namespace nsA: String, _ b: String, namespace nsB: String) -> Bool {
        let na = normalize(a), nb = normalize(b)
        if na.hasPrefix("*") || nb.hasPrefix("*") {
            if na.hasPrefix("*") && nb.hasPrefix("*") { return na == nb }
            let (pattern, host, hostNs) = na.hasPrefix("*") ? (na, nb, nsB) : (nb, na, nsA)
            return aliases(host, namespace: hostNs).contains { wildcardMatches(pattern: pattern, host: $0) }
        }
        let sa = Set(qualifiedNames(na, namespace: nsA))
        return qualifiedNames(nb, namespace: nsB).contains { sa.contains($0) }
    }

    /// The host part of an authority ("Host:8080" → "host", "[::1]:80" → "[::1]"), normalized.
    public static func stripPort(_ authority: String) -> String {
        var a = Substring(authority)
        if a.hasPrefix("[") {
            if let close = a.firstIndex(of: "]") { a = a[...close] }
        } else if let colon = a.lastIndex(of: ":") {
            a = a[..<colon]
        }
        return normalize(String(a))
    }
}
