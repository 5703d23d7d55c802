import RemoraConfig

public enum FaultDecision: Sendable, Equatable {
    case none
    case delay(ms: Int)
    /// A gRPC abort has httpStatus 200 (Envoy answers it trailers-only with `grpc-status`).
    case abort(httpStatus: Int, grpcStatus: Int?)
    case delayThenAbort(ms: Int, httpStatus: Int, grpcStatus: Int?)
}

/// Envoy's FractionalPercent: a random value is in when `random % denominator < numerator`.
struct Fraction: Sendable, Equatable {
    var numerator: UInt32
    var denominator: UInt32

    static let never = Fraction(numerator: 0, denominator: 100)
    static let always = Fraction(numerator: 100, denominator: 100)

    /// Istio's translatePercentToFractionalPercent: `uint32(value * 10000)` per million (truncated).
    init(percent: Percent) {
        numerator = UInt32(max(0, min(100, percent.value)) * 10_000)
        denominator = 1_000_000
    }

    /// Istio's translateIntegerToFractionalPercent, for the deprecated integer `percent` fields.
    init(integerPercent: Int) {
        numerator = UInt32(max(0, min(100, integerPercent)))
        denominator = 100
    }

    init(numerator: UInt32, denominator: UInt32) {
        self.numerator = numerator
        self.denominator = denominator
    }

    @inline(__always) func contains(_ random: UInt32) -> Bool { random % denominator < numerator }
}

/// A rule's `fault`, as Istio translates it for Envoy's fault filter.
struct CompiledFault: Sendable {
    var delayMs: Int?
    var delayFraction = Fraction.never
    var abort: (http: Int, grpc: Int?)?
    var abortFraction = Fraction.never

    /// nil when the fault does nothing (Istio drops exponential delays and http2Error aborts). An absent
    /// `percentage` means 0 % (Istio's behaviour, istio/istio#36303, whatever older docs said).
    static func compile(_ f: HTTPFaultInjection?, path: String, fail: (String, String) -> Void) -> CompiledFault? {
        guard let f else { return nil }
        var out = CompiledFault()
        if let d = f.delay, let fixed = d.fixedDelay {
            let ms = Int(fixed.nanoseconds / 1_000_000)
            if ms > 0 {  // Envoy: "Delay only if the duration is >0ms"
                out.delayMs = ms
                out.delayFraction = d.percentage.map(Fraction.init(percent:)) ?? Fraction(integerPercent: d.percent ?? 0)
            }
        }
        if let a = f.abort {
            if let s = a.httpStatus {
                out.abort = (s, nil)
            } else if let name = a.grpcStatus {
                if let code = GRPCStatus.code(name) {
                    out.abort = (200, code)
                } else {
                    fail("\(path).abort.grpcStatus", "unknown gRPC status \"\(name)\" (expected a name such as UNAVAILABLE)")
                }
            }
            if out.abort != nil { out.abortFraction = a.percentage.map(Fraction.init(percent:)) ?? .never }
        }
        return out.delayMs == nil && out.abort == nil ? nil : out
    }

    /// Envoy decides the delay first, then (after it) the abort, each with its own random value.
    func decide(random1: UInt32, random2: UInt32) -> FaultDecision {
        let delay = delayMs.flatMap { delayFraction.contains(random1) ? $0 : nil }
        let abort = self.abort.flatMap { abortFraction.contains(random2) ? $0 : nil }
        switch (delay, abort) {
        case (nil, nil): return .none
        case (let ms?, nil): return .delay(ms: ms)
        case (nil, let a?): return .abort(httpStatus: a.http, grpcStatus: a.grpc)
        case (let ms?, let a?): return .delayThenAbort(ms: ms, httpStatus: a.http, grpcStatus: a.grpc)
        }
    }
}

/// The gRPC status names Istio accepts in `grpcStatus` (its SupportedGRPCStatus).
enum GRPCStatus {
    static let names = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"]

    static func code(_ name: String) -> Int? { names.firstIndex(of: name) }
}
