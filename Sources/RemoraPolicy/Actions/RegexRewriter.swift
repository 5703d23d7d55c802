import CRE2

/// An RE2 pattern with a substitution, for `uriRegexRewrite` (Envoy's regex_rewrite: RE2::GlobalReplace,
/// `\1`-style capture references). Its own handle, not RemoraConfig's RE2Regex, because the replace API
/// lives here; RE2 objects are immutable and safe to share between workers.
final class RegexRewriter: @unchecked Sendable {
    let pattern: String
    let substitution: String
    private let handle: OpaquePointer

    /// The RE2 error for a bad pattern, or for a substitution naming a group the pattern does not have.
    static func compile(pattern: String, substitution: String) -> Result<RegexRewriter, RegexFailure> {
        var errbuf = [CChar](repeating: 0, count: 256)
        let h: OpaquePointer? = pattern.utf8CString.withUnsafeBufferPointer {
            cre2_new($0.baseAddress, $0.count - 1, &errbuf, errbuf.count)
        }
        guard let h else { return .failure(RegexFailure(field: "match", message: String(cString: errbuf))) }
        let ok = substitution.utf8CString.withUnsafeBufferPointer {
            cre2_check_rewrite(h, $0.baseAddress, $0.count - 1, &errbuf, errbuf.count)
        }
        guard ok != 0 else {
            cre2_free(h)
            return .failure(RegexFailure(field: "rewrite", message: String(cString: errbuf)))
        }
        return .success(RegexRewriter(pattern: pattern, substitution: substitution, handle: h))
    }

    private init(pattern: String, substitution: String, handle: OpaquePointer) {
        self.pattern = pattern
        self.substitution = substitution
        self.handle = handle
    }

    deinit { cre2_free(handle) }

    /// Every non-overlapping match replaced; `text` itself when nothing matched.
    func replaceAll<S: StringProtocol>(_ text: S) -> String {
        var t = String(text)
        var sub = substitution
        return t.withUTF8 { tb in
            sub.withUTF8 { sb in
                var n = 0
                let tp = tb.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
                let sp = sb.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
                guard let out = cre2_global_replace(handle, tp, tb.count, sp, sb.count, &n) else { return String(decoding: tb, as: UTF8.self) }
                defer { cre2_free_buffer(out) }
                return String(decoding: UnsafeRawBufferPointer(start: out, count: n), as: UTF8.self)
            }
        }
    }
}

struct RegexFailure: Error {
    /// "match" or "rewrite": which field of uriRegexRewrite is at fault.
    var field: String
    var message: String
}
