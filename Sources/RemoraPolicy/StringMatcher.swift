import RemoraConfig

/// A StringMatch compiled once: regexes are RE2 objects shared by all workers.
enum StringMatcher: Sendable, CustomStringConvertible {
    case exact(String)
    case prefix(String)
    case regex(RE2Regex)
    case present

    /// Compiles; validation already rejected bad patterns, so a failure here is reported by the caller.
    static func compile(_ m: StringMatch, lowercase: Bool = false) -> Result<StringMatcher, RegexError> {
        switch m {
        case .exact(let s): return .success(.exact(lowercase ? s.lowercased() : s))
        case .prefix(let s): return .success(.prefix(lowercase ? s.lowercased() : s))
        case .present: return .success(.present)
        case .regex(let p): return RE2Regex.compile(p).map { .regex($0) }
        }
    }

    var description: String {
        switch self {
        case .exact(let s): return "exact \"\(s)\""
        case .prefix(let s): return "prefix \"\(s)\""
        case .regex(let r): return "regex \"\(r.pattern)\""
        case .present: return "presence"
        }
    }

    /// `value` nil means absent: only a presence-type match can fail or succeed on it.
    func matches(_ value: String?) -> Bool {
        guard let value else { return false }
        switch self {
        case .exact(let s): return value == s
        case .prefix(let s): return value.hasPrefix(s)
        case .regex(let r): return r.fullMatch(value)
        case .present: return true
        }
    }
}
