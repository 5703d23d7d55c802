/// Which end of the connection a session plays.
public enum H2Role: Sendable { case server, client }

/// What a session advertises in its SETTINGS and enforces on what it receives.
public struct H2Settings: Sendable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise.
    public var maxConcurrentStreams = 100
    /// SETTINGS_INITIAL_WINDOW_SIZE we advertise (each stream's receive window).
    public var initialStreamWindow = 262_144
    /// Our connection-level receive window (raised from 65 535 at creation).
    public var connectionWindow = 1_048_576
    /// SETTINGS_MAX_HEADER_LIST_SIZE; also enforced on received blocks
    /// (name + value + 32 per field, RFC 9113 §6.5.2).
    public var maxHeaderListBytes = 61_440
    /// Header fields per received block, enforced.
    public var maxHeaders = 100
    public init() {}
}
