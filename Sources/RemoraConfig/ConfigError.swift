/// One configuration problem, located as precisely as we can: file, resource and field path.
public struct ConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable {
        case invalid
        /// A file or directory that cannot be read (the CLI maps this to exit code 3, not 1).
        case unreadable
    }

    public var kind: Kind
    public var file: String?
    /// "VirtualService default/adservice"
    public var resource: String?
    /// "spec.http[0].match[0].headers.userid.regex", "" when the whole document is at fault.
    public var path: String
    public var message: String

    public init(kind: Kind = .invalid, file: String? = nil, resource: String? = nil, path: String = "", message: String) {
        self.kind = kind
        self.file = file
        self.resource = resource
        self.path = path
        self.message = message
    }

    /// One line: "FILE: VirtualService default/adservice: spec.http[0]...: message" (absent parts omitted).
    public var description: String {
        var parts: [String] = []
        if let file, !file.isEmpty { parts.append(file) }
        if let resource, !resource.isEmpty { parts.append(resource) }
        if !path.isEmpty { parts.append(path) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}

/// Every error found in one load: configuration is rejected as a whole, never half-applied.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) { self.errors = errors }
    public init(errors: [ConfigError]) { self.errors = errors }

    /// True when any error is an unreadable file (exit code 3 rather than 1).
    public var hasUnreadable: Bool { errors.contains { $0.kind == .unreadable } }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
