import CRE2

/// A compiled RE2 pattern. RE2 objects are immutable after construction and thread-safe for
/// matching, so one instance is shared read-only by every worker; the handle is freed on deinit.
public final class RE2Regex: @unchecked Sendable {
    public let pattern: String
    private let handle: OpaquePointer

    /// Returns the RE2 error message on a bad pattern.
    public static func compile(_ pattern: String) -> Result<RE2Regex, RegexError> {
        var errbuf = [CChar](repeating: 0, count: 256)
        let ptr: OpaquePointer? = pattern.utf8CString.withUnsafeBufferPointer { buf in
            // utf8CString carries a trailing NUL that is not part of the pattern.
            cre2_new(buf.baseAddress, buf.count - 1, &errbuf, errbuf.count)
        }
        guard let ptr else {
            let msg = errbuf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            return .failure(RegexError(message: msg))
        }
        return .success(RE2Regex(pattern: pattern, handle: ptr))
    }

    private init(pattern: String, handle: OpaquePointer) {
        self.pattern = pattern
        self.handle = handle
    }

    deinit { cre2_free(handle) }

    /// RE2 full match: the whole text must match, as Istio/Envoy `safe_regex` does.
    public func fullMatch(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { buf in
            cre2_full_match(handle, buf.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, buf.count) != 0
        }
    }

    public func fullMatch(_ text: Substring) -> Bool { fullMatch(String(text)) }
}

public struct RegexError: Error, Sendable, Equatable {
    public var message: String
}
