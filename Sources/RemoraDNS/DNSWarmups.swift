/// Cluster warming (Envoy's): a configuration that brings new names waits until each of them
/// has been looked up once — answered or failed — or until its deadline, whichever is first.
/// A pure state machine over monotonic milliseconds.
public struct DNSWarmups: Sendable {
    struct Waiter: Sendable {
        let id: Int
        var pending: Set<String>
        let deadline: UInt64
    }

    private var waiters: [Waiter] = []

    public init() {}

    public var isEmpty: Bool { waiters.isEmpty }

    /// Waits for `names` until `deadline`. Returns false (nothing to wait for) when `names` is empty.
    public mutating func add(id: Int, names: Set<String>, deadline: UInt64) -> Bool {
        guard !names.isEmpty else { return false }
        waiters.append(Waiter(id: id, pending: names, deadline: deadline))
        return true
    }

    /// `name` has a result (or is no longer wanted): the waiters it completes, in the order they were added.
    public mutating func settled(_ name: String) -> [Int] {
        var done: [Int] = []
        for i in waiters.indices where waiters[i].pending.remove(name) != nil && waiters[i].pending.isEmpty {
            done.append(waiters[i].id)
        }
        waiters.removeAll { $0.pending.isEmpty }
        return done
    }

    /// The waiters whose deadline has passed at `now`, with the names still unanswered.
    public mutating func expire(now: UInt64) -> [(id: Int, unanswered: [String])] {
        let due = waiters.filter { $0.deadline <= now }
        waiters.removeAll { $0.deadline <= now }
        return due.map { ($0.id, $0.pending.sorted()) }
    }

    public var nextDeadline: UInt64? { waiters.map(\.deadline).min() }
}
