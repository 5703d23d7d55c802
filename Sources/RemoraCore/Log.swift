#if canImport(Glibc)
import Glibc
#endif

/// Operational log lines on stderr, one line each. Never on the per-request path
/// (the access log is separate); errors name what failed and why.
public enum Log {
    public enum Level: Int, Comparable, Sendable {
        case debug, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        var label: StaticString {
            switch self {
            case .debug: "debug"
            case .info: "info"
            case .warning: "warning"
            case .error: "error"
            }
        }
    }

    nonisolated(unsafe) public static var minimum: Level = .info

    public static func debug(_ msg: @autoclosure () -> String) { write(.debug, msg) }
    public static func info(_ msg: @autoclosure () -> String) { write(.info, msg) }
    public static func warning(_ msg: @autoclosure () -> String) { write(.warning, msg) }
    public static func error(_ msg: @autoclosure () -> String) { write(.error, msg) }

    private static func write(_ level: Level, _ msg: () -> String) {
        guard level >= minimum else { return }
        fputs("remora \(level.label): \(msg())\n", stderr)
    }
}
