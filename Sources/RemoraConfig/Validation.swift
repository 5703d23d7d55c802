/// Rules that span resources: duplicates, at most one Proxy, gateway references, subsets.
/// (Rules inside one resource are checked while it is decoded.)
enum Validation {
    static func crossResource(_ resources: [Resource]) -> [ConfigError] {
        var errors: [ConfigError] = []
        func err(_ r: Resource, _ path: String, _ message: String) {
            errors.append(ConfigError(kind: .invalid, file: r.source, resource: r.key.description, path: path, message: message))
        }

        var seen: [ResourceKey: Resource] = [:]
        var proxy: Resource?
        for r in resources {
            if r.name.isEmpty { continue }  // already reported as a missing name
            if let first = seen[r.key] {
                err(r, "metadata.name", "duplicate \(r.key)" + (first.source.map { " (first defined in \($0))" } ?? ""))
            } else {
                seen[r.key] = r
            }
            if r.kind == .proxy {
                if let p = proxy {
                    err(r, "", "at most one Proxy resource is allowed (\(p.key) is already defined)")
                } else {
                    proxy = r
                }
            }
        }

        let gatewayKeys = Set(resources.filter { $0.kind == .gateway }.map(\.key))
        let rules = resources.compactMap(\.destinationRule)

        func checkGateway(_ r: Resource, _ ref: String, _ path: String, _ ns: String) {
            if ref == "mesh" { return }
            if gatewayKey(for: ref, namespace: ns, existing: gatewayKeys) == nil {
                let parts = ref.split(separator: "/", omittingEmptySubsequences: false)
                if parts.count > 2 || parts.contains(where: \.isEmpty) {
                    err(r, path, "invalid gateway reference \"\(ref)\" (expected NAME or NAMESPACE/NAME)")
                } else {
                    let full = parts.count == 2 ? ref : "\(ns)/\(ref)"
                    err(r, path, "gateway \"\(full)\" is not defined by any Gateway")
                }
            }
        }

        func checkSubset(_ r: Resource, _ d: Destination, _ path: String, _ ns: String) {
            guard let subset = d.subset, !d.host.isEmpty else { return }
            let defined = rules.contains { dr in
                HostNames.sameService(dr.spec.host, namespace: dr.metadata.namespace, d.host, namespace: ns)
                    && dr.spec.subsets.contains { $0.name == subset }
            }
            if !defined {
                err(r, joinPath(path, "subset"), "subset \"\(subset)\" is not defined by any DestinationRule for host \"\(d.host)\"")
            }
        }

        // VirtualServices named by some rule's `delegate` ("ns/name").
        var delegates = Set<String>()
        for r in resources {
            guard let vs = r.virtualService else { continue }
            for rule in vs.spec.http { if let d = rule.delegate { delegates.insert("\(d.namespace ?? vs.metadata.namespace)/\(d.name)") } }
        }

        for r in resources {
            guard let vs = r.virtualService else { continue }
            let ns = vs.metadata.namespace
            if vs.spec.hosts.isEmpty && (vs.spec.gateways != nil || !delegates.contains("\(ns)/\(vs.metadata.name)")) {
                err(r, "spec.hosts", "required field is missing (only a VirtualService used as a delegate may omit it)")
            }
            for (i, rule) in vs.spec.http.enumerated() {
                guard let d = rule.delegate else { continue }
                let key = ResourceKey(kind: .virtualService, namespace: d.namespace ?? ns, name: d.name)
                if let target = resources.first(where: { $0.key == key })?.virtualService {
                    if !target.spec.hosts.isEmpty {
                        err(r, "spec.http[\(i)].delegate", "delegate \(key.namespace)/\(key.name) must not have hosts")
                    }
                } else {
                    err(r, "spec.http[\(i)].delegate", "delegate VirtualService \(key.namespace)/\(key.name) is not defined")
                }
            }
            for (i, g) in (vs.spec.gateways ?? []).enumerated() {
                checkGateway(r, g, "spec.gateways[\(i)]", ns)
            }
            for (i, rule) in vs.spec.http.enumerated() {
                let base = "spec.http[\(i)]"
                for (j, m) in rule.match.enumerated() {
                    for (k, g) in m.gateways.enumerated() { checkGateway(r, g, "\(base).match[\(j)].gateways[\(k)]", ns) }
                }
                for (j, d) in rule.route.enumerated() { checkSubset(r, d.destination, "\(base).route[\(j)].destination", ns) }
                if let m = rule.mirror { checkSubset(r, m, "\(base).mirror", ns) }
                for (j, m) in rule.mirrors.enumerated() { checkSubset(r, m.destination, "\(base).mirrors[\(j)].destination", ns) }
            }
            for (i, rule) in vs.spec.tcp.enumerated() {
                for (j, d) in rule.route.enumerated() { checkSubset(r, d.destination, "spec.tcp[\(i)].route[\(j)].destination", ns) }
                for (j, m) in rule.match.enumerated() {
                    for (k, g) in m.gateways.enumerated() { checkGateway(r, g, "spec.tcp[\(i)].match[\(j)].gateways[\(k)]", ns) }
                }
            }
            for (i, rule) in vs.spec.tls.enumerated() {
                for (j, d) in rule.route.enumerated() { checkSubset(r, d.destination, "spec.tls[\(i)].route[\(j)].destination", ns) }
                for (j, m) in rule.match.enumerated() {
                    for (k, g) in m.gateways.enumerated() { checkGateway(r, g, "spec.tls[\(i)].match[\(j)].gateways[\(k)]", ns) }
                }
            }
        }
        return errors
    }

    static func gatewayKey(for ref: String, namespace: String, existing: Set<ResourceKey>) -> ResourceKey? {
        if ref == "mesh" { return nil }
        let parts = ref.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 2 {
            let k = ResourceKey(kind: .gateway, namespace: parts[0], name: parts[1])
            return existing.contains(k) ? k : nil
        }
        guard parts.count == 1, !ref.isEmpty else { return nil }
        let k = ResourceKey(kind: .gateway, namespace: namespace, name: ref)
        if existing.contains(k) { return k }
        // Deprecated Istio form: NAME.NAMESPACE.svc.cluster.local
        let labels = ref.split(separator: ".").map(String.init)
        if labels.count >= 2 {
            let k2 = ResourceKey(kind: .gateway, namespace: labels[1], name: labels[0])
            if existing.contains(k2) { return k2 }
        }
        return nil
    }
}
