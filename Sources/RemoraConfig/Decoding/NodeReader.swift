/// Collects errors while one resource is decoded: decoding never stops at the first problem,
/// so a user sees every mistake in one run.
final class DecodeContext {
    var errors: [ConfigError] = []
    let file: String?
    var resource: String?

    init(file: String?, resource: String? = nil) {
        self.file = file
        self.resource = resource
    }

    func error(_ path: String, _ message: String) {
        errors.append(ConfigError(kind: .invalid, file: file, resource: resource, path: path, message: message))
    }
}

func joinPath(_ base: String, _ key: String) -> String { base.isEmpty ? key : base + "." + key }

/// Reads one mapping, remembering which keys were looked at so that every other key can be
/// reported as an unknown field with its path (Istio's strict decoding; a typo is not silently ignored).
final class ObjectReader {
    let ctx: DecodeContext
    let path: String
    let entries: [YPair]
    private var seen = Set<String>()

    init(ctx: DecodeContext, path: String, entries: [YPair]) {
        self.ctx = ctx
        self.path = path
        self.entries = entries
    }

    /// Runs `body` over `node` if it is a mapping; reports a type error otherwise, then unknown keys.
    static func read<T>(_ ctx: DecodeContext, _ node: YNode, _ path: String, _ body: (ObjectReader) -> T) -> T? {
        guard case .mapping(let entries, _) = node else {
            ctx.error(path, "expected an object, found \(node.typeName)")
            return nil
        }
        let r = ObjectReader(ctx: ctx, path: path, entries: entries)
        let v = body(r)
        r.finish()
        return v
    }

    func p(_ key: String) -> String { joinPath(path, key) }

    /// The raw node for `key` (nil when absent or null); marks the key as known.
    func node(_ key: String) -> YNode? {
        seen.insert(key)
        guard let n = entries.first(where: { $0.key == key })?.value else { return nil }
        if case .null = n { return nil }
        return n
    }

    func has(_ key: String) -> Bool { entries.contains { $0.key == key } }

    /// Accepted for compatibility and dropped (server-set metadata, deprecated no-op fields).
    func ignore(_ keys: String...) { for k in keys { seen.insert(k) } }

    func finish() {
        for k in entries.map(\.key) where !seen.contains(k) {
            ctx.error(p(k), "unknown field \"\(k)\"")
        }
    }

    func missing(_ key: String) { ctx.error(p(key), "required field is missing") }

    // MARK: scalars

    func string(_ key: String, required: Bool = false) -> String? {
        guard let n = node(key) else { if required { missing(key) }; return nil }
        return scalarString(ctx, n, p(key))
    }

    func nonEmptyString(_ key: String, required: Bool = false) -> String? {
        guard let s = string(key, required: required) else { return nil }
        if s.isEmpty { ctx.error(p(key), "must not be empty"); return nil }
        return s
    }

    func int(_ key: String, min: Int = Int.min, max: Int = Int.max, required: Bool = false) -> Int? {
        guard let n = node(key) else { if required { missing(key) }; return nil }
        return scalarInt(ctx, n, p(key), min: min, max: max)
    }

    func port(_ key: String, required: Bool = false) -> Int? {
        int(key, min: 1, max: 65535, required: required)
    }

    func double(_ key: String, min: Double = -Double.infinity, max: Double = Double.infinity) -> Double? {
        guard let n = node(key) else { return nil }
        guard case .scalar(let s, _, _) = n, let d = Double(s), d.isFinite else {
            ctx.error(p(key), "expected a number"); return nil
        }
        if d < min || d > max { ctx.error(p(key), "must be between \(fmt(min)) and \(fmt(max))"); return nil }
        return d
    }

    func bool(_ key: String) -> Bool? {
        guard let n = node(key) else { return nil }
        return scalarBool(ctx, n, p(key))
    }

    /// `min`: the shortest duration accepted (Istio's `ValidateDuration` wants at least 1ms where
    /// zero would be meaningless, e.g. a per-try timeout or a retry backoff).
    func duration(_ key: String, min: ConfigDuration? = nil, required: Bool = false) -> ConfigDuration? {
        guard let n = node(key) else { if required { missing(key) }; return nil }
        guard let s = scalarString(ctx, n, p(key)) else { return nil }
        guard let d = ConfigDuration.parse(s) else {
            ctx.error(p(key), "invalid duration \"\(s)\" (expected e.g. 10s, 100ms, 1m30s)")
            return nil
        }
        if let min, d.nanoseconds < min.nanoseconds {
            ctx.error(p(key), "duration \"\(s)\" must be at least \(min)")
            return nil
        }
        return d
    }

    /// An enum value from Istio's API, given by name.
    func enumValue(_ key: String, _ allowed: [String], required: Bool = false) -> String? {
        guard let s = string(key, required: required) else { return nil }
        guard allowed.contains(s) else {
            ctx.error(p(key), "invalid value \"\(s)\" (expected one of \(allowed.joined(separator: ", ")))")
            return nil
        }
        return s
    }

    // MARK: collections

    func stringList(_ key: String, required: Bool = false) -> [String]? {
        guard let n = node(key) else { if required { missing(key) }; return nil }
        return list(n, p(key)) { node, path in scalarString(ctx, node, path) }
    }

    func stringMap(_ key: String) -> [String: String]? {
        guard let n = node(key) else { return nil }
        guard let pairs = mapEntries(n, p(key)) else { return nil }
        var out: [String: String] = [:]
        for pair in pairs { let k = pair.key, v = pair.value
            if let s = scalarString(ctx, v, joinPath(p(key), k)) { out[k] = s }
        }
        return out
    }

    func intMap(_ key: String, min: Int, max: Int) -> [String: Int]? {
        guard let n = node(key) else { return nil }
        guard let pairs = mapEntries(n, p(key)) else { return nil }
        var out: [String: Int] = [:]
        for pair in pairs { let k = pair.key, v = pair.value
            if let i = scalarInt(ctx, v, joinPath(p(key), k), min: min, max: max) { out[k] = i }
        }
        return out
    }

    func object<T>(_ key: String, required: Bool = false, _ body: (ObjectReader) -> T) -> T? {
        guard let n = node(key) else { if required { missing(key) }; return nil }
        return ObjectReader.read(ctx, n, p(key), body)
    }

    func objectList<T>(_ key: String, required: Bool = false, _ body: (ObjectReader) -> T) -> [T]? {
        guard let n = node(key) else { if required { missing(key) }; return nil }
        return list(n, p(key)) { node, path in ObjectReader.read(ctx, node, path, body) }
    }

    /// A map whose values are objects, in document order (order matters for output, not for matching).
    func objectMap<T>(_ key: String, _ body: (ObjectReader) -> T) -> [(String, T)]? {
        guard let n = node(key) else { return nil }
        guard let pairs = mapEntries(n, p(key)) else { return nil }
        var out: [(String, T)] = []
        for pair in pairs { let k = pair.key, v = pair.value
            // `{}` and a null value are both an empty object (e.g. a header presence match).
            if case .null = v {
                if let t = ObjectReader.read(ctx, .mapping([], line: v.line), joinPath(p(key), k), body) { out.append((k, t)) }
            } else if let t = ObjectReader.read(ctx, v, joinPath(p(key), k), body) {
                out.append((k, t))
            }
        }
        return out
    }

    private func mapEntries(_ n: YNode, _ path: String) -> [YPair]? {
        guard case .mapping(let pairs, _) = n else {
            ctx.error(path, "expected an object, found \(n.typeName)")
            return nil
        }
        return pairs
    }

    private func list<T>(_ n: YNode, _ path: String, _ body: (YNode, String) -> T?) -> [T]? {
        guard case .sequence(let items, _) = n else {
            ctx.error(path, "expected a list, found \(n.typeName)")
            return nil
        }
        var out: [T] = []
        for (i, item) in items.enumerated() {
            if let v = body(item, "\(path)[\(i)]") { out.append(v) }
        }
        return out
    }
}

func scalarString(_ ctx: DecodeContext, _ n: YNode, _ path: String) -> String? {
    guard case .scalar(let s, _, _) = n else {
        ctx.error(path, "expected a string, found \(n.typeName)")
        return nil
    }
    return s
}

/// Integers may also come quoted: protobuf's JSON mapping writes 64-bit integers as strings.
func scalarInt(_ ctx: DecodeContext, _ n: YNode, _ path: String, min: Int, max: Int) -> Int? {
    guard case .scalar(let s, _, _) = n, let i = Int(s) ?? Double(s).flatMap({ $0 == $0.rounded() && abs($0) < 1e15 ? Int($0) : nil }) else {
        ctx.error(path, "expected an integer, found \(describe(n))")
        return nil
    }
    if i < min || i > max {
        if min == 1 && max == 65535 {
            ctx.error(path, "port \(i) is out of range (1-65535)")
        } else {
            ctx.error(path, "\(i) is out of range (\(min == Int.min ? "" : String(min))-\(max == Int.max ? "" : String(max)))")
        }
        return nil
    }
    return i
}

func scalarBool(_ ctx: DecodeContext, _ n: YNode, _ path: String) -> Bool? {
    if case .scalar(let s, _, _) = n {
        switch s.lowercased() {
        case "true": return true
        case "false": return false
        default: break
        }
    }
    ctx.error(path, "expected true or false, found \(describe(n))")
    return nil
}

private func describe(_ n: YNode) -> String {
    if case .scalar(let s, _, _) = n { return "\"\(s)\"" }
    return n.typeName
}

private func fmt(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d) }
