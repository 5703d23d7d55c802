/// What an event loop calls when a registered file descriptor is ready.
/// `events` is a bit set of `IOEvents`.
public protocol EventHandler: AnyObject {
    func handleEvent(_ events: UInt32)
}

/// epoll's event bits, named.
public enum IOEvents {
    public static let readable: UInt32 = 0x001
    public static let writable: UInt32 = 0x004
    public static let error: UInt32 = 0x008
    public static let hangup: UInt32 = 0x010
    public static let readHangup: UInt32 = 0x2000
    public static let edgeTriggered: UInt32 = 1 << 31

    /// What connections register once: edge-triggered read and write readiness, so the
    /// request path never calls epoll_ctl; the owner tracks readability itself.
    public static let connection: UInt32 = readable | writable | readHangup | edgeTriggered
}

/// Work an object asks its loop to run after the current event (see `EventLoop.schedule`).
public protocol DeferredTask: AnyObject {
    func runDeferred()
}
