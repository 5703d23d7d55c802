import Yams

/// The parsed document, reduced to what decoding needs: ordered mappings, scalars with their
/// quoting (a quoted "80" is a string, a plain 80 a number), and line numbers for messages.
enum YNode {
    case scalar(String, plain: Bool, line: Int)
    case mapping([YPair], line: Int)
    case sequence([YNode], line: Int)
    case null(line: Int)

    var line: Int {
        switch self {
        case .scalar(_, _, let l), .mapping(_, let l), .sequence(_, let l), .null(let l): return l
        }
    }

    var typeName: String {
        switch self {
        case .scalar: return "a scalar"
        case .mapping: return "an object"
        case .sequence: return "a list"
        case .null: return "null"
        }
    }

    /// Converts a Yams node. Mapping keys must be scalars (Kubernetes resources never use others).
    static func from(_ node: Node) throws -> YNode {
        switch node {
        case .scalar(let s):
            let line = s.mark?.line ?? 0
            let plain = s.style == .plain
            if plain, ["", "~", "null", "Null", "NULL"].contains(s.string) { return .null(line: line) }
            if s.tag.rawValue == "tag:yaml.org,2002:null" { return .null(line: line) }
            return .scalar(s.string, plain: plain && s.tag.rawValue != "tag:yaml.org,2002:str", line: line)
        case .mapping(let m):
            var pairs: [YPair] = []
            var seen = Set<String>()
            for (k, v) in m {
                guard case .scalar(let ks) = k else {
                    throw YAMLTreeError(line: k.mark?.line ?? 0, message: "mapping keys must be strings")
                }
                if !seen.insert(ks.string).inserted {
                    throw YAMLTreeError(line: k.mark?.line ?? 0, message: "duplicate key \"\(ks.string)\"")
                }
                pairs.append(YPair(key: ks.string, value: try from(v)))
            }
            return .mapping(pairs, line: m.mark?.line ?? 0)
        case .sequence(let seq):
            return .sequence(try seq.map { try from($0) }, line: seq.mark?.line ?? 0)
        case .alias(let a):
            throw YAMLTreeError(line: a.mark?.line ?? 0, message: "unresolved YAML alias")
        }
    }

    /// The generic JSON-shaped value, resolving plain scalars the way YAML 1.2 core / JSON does.
    var configValue: ConfigValue {
        switch self {
        case .null: return .null
        case .scalar(let s, let plain, _):
            guard plain else { return .string(s) }
            switch s {
            case "true", "True", "TRUE": return .bool(true)
            case "false", "False", "FALSE": return .bool(false)
            default: break
            }
            if let i = Int(s) { return .int(i) }
            if s.first.map({ $0.isNumber || $0 == "-" || $0 == "." || $0 == "+" }) == true, let d = Double(s) { return .double(d) }
            return .string(s)
        case .mapping(let pairs, _): return .object(pairs.map { .init($0.key, $0.value.configValue) })
        case .sequence(let items, _): return .array(items.map(\.configValue))
        }
    }
}

struct YAMLTreeError: Error {
    var line: Int
    var message: String
}

struct YPair {
    var key: String
    var value: YNode
}
