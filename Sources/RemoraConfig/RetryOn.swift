/// Istio's `retryOn` vocabulary (`HTTPRetry.retryOn`): Envoy's `x-envoy-retry-on` and
/// `x-envoy-retry-grpc-on` condition names, and HTTP status codes. This is the one list of
/// accepted names: validation reports anything else, and RemoraResilience maps each name to
/// its condition (`RetryConditions.tokens`, checked against this list by a unit test).
public enum RetryOn {
    /// Istio's `supportedRetryOnPolicies` (plus Envoy's `reset-before-request`), in the order
    /// explain/admin output lists them.
    public static let conditionNames: [String] = [
        "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx", "refused-stream",
        "retriable-status-codes", "retriable-headers", "envoy-ratelimited", "http3-post-connect-failure",
        "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
    ]

    public enum Token: Sendable, Hashable {
        case condition(String)
        case statusCode(Int)
        /// Not accepted; the text is the validation message, naming the token.
        case invalid(String)
    }

    /// The tokens of a `retryOn` value: comma-separated, blanks around each ignored and empty
    /// ones skipped (Istio's translation trims; its validation is stricter about blanks, which
    /// a user never means).
    public static func tokens(_ text: String) -> [Token] {
        var out: [Token] = []
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let part = raw.trimmingBlanks
            if part.isEmpty { continue }
            if let code = Int(part) {
                out.append(isKnownStatus(code) ? .statusCode(code) : .invalid("\"\(part)\" is not a valid retryOn status code"))
            } else if conditionNames.contains(where: { $0 == part }) {
                out.append(.condition(String(part)))
            } else {
                out.append(.invalid("\"\(part)\" is not a valid retryOn policy (expected an HTTP status code or one of "
                                    + conditionNames.joined(separator: ", ") + ")"))
            }
        }
        return out
    }

    /// Validation messages for `text` (empty: valid).
    public static func errors(_ text: String) -> [String] {
        tokens(text).compactMap { if case .invalid(let message) = $0 { message } else { nil } }
    }

    /// The status codes Go's `http.StatusText` knows: Istio accepts only those in `retryOn`.
    public static func isKnownStatus(_ code: Int) -> Bool {
        switch code {
        case 100...103, 200...208, 226, 300...305, 307, 308, 400...418, 421...426, 428, 429, 431, 451,
             500...508, 510, 511:
            return true
        default:
            return false
        }
    }
}

extension Substring {
    /// Without the spaces and tabs around it (list items such as `retryOn` tokens or hash keys).
    public var trimmingBlanks: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
