import Yams

extension ConfigValue {
    /// Parses one JSON or YAML document into a value (for admin API bodies such as /routes/explain).
    /// Multi-document text yields the first document; empty text yields `.null`.
    public static func parse(_ text: String) throws(ConfigErrors) -> ConfigValue {
        do {
            guard let node = try Yams.compose(yaml: text) else { return .null }
            return try YNode.from(node).configValue
        } catch let e as YAMLTreeError {
            throw ConfigErrors([ConfigError(message: "line \(e.line): \(e.message)")])
        } catch {
            throw ConfigErrors([ConfigError(message: "cannot parse: \(error)")])
        }
    }

    /// YAML text (block style), for `Accept: application/yaml`.
    public func yamlString() -> String {
        (try? Yams.serialize(node: yamlNode)) ?? jsonString()
    }

    /// Several values as one multi-document YAML stream.
    public static func yamlDocuments(_ values: [ConfigValue]) -> String {
        (try? Yams.serialize(nodes: values.map(\.yamlNode))) ?? values.map { $0.jsonString() }.joined(separator: "\n")
    }

    var yamlNode: Node {
        switch self {
        case .null: return Node("null", Tag(.null))
        case .bool(let b): return Node(b ? "true" : "false", Tag(.bool))
        case .int(let i): return Node(String(i), Tag(.int))
        case .double(let d): return Node(String(d), Tag(.float))
        case .string(let s):
            // Quote strings that would otherwise read back as another type ("true", "80", "null", "").
            let plain = YNode.scalar(s, plain: true, line: 0).configValue
            return Node(s, Tag(.str), plain == .string(s) && !s.isEmpty ? .any : .doubleQuoted)
        case .array(let items): return Node(items.map(\.yamlNode))
        case .object(let entries): return Node(entries.map { (Node($0.key), $0.value.yamlNode) })
        }
    }
}
