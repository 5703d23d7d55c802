/// A name server to ask instead of those of /etc/resolv.conf: an IP literal and a port.
public struct DNSServer: Sendable, Hashable, CustomStringConvertible {
    public var address: String
    public var port: Int

    public init(address: String, port: Int = 53) {
        self.address = address
        self.port = port
    }

    /// c-ares' `ares_set_servers_ports_csv` form: "1.2.3.4:53", "[::1]:53".
    public var description: String { address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)" }
}

/// Looks names up without blocking, on one event loop. Results are delivered on that loop,
/// never from inside `resolve` itself.
public protocol DNSResolving: AnyObject {
    /// Every address record of `name` (both families) with their TTLs, or why not.
    func resolve(_ name: String, _ done: @escaping (DNSResult) -> Void)
    /// Ends every lookup under way (each is delivered `.cancelled`) and releases the resolver.
    func close()
}
