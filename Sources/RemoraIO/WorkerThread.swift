#if canImport(Glibc)
import Glibc
#endif

/// A thread running one event loop. Workers are started once and live until stop.
public final class WorkerThread: @unchecked Sendable {
    public let loop: EventLoop
    public let index: Int
    private var thread = pthread_t()
    private var body: (() -> Void)?
    private let done = Lock()
    private var finished = false

    public init(index: Int, loop: EventLoop = EventLoop()) {
        self.index = index
        self.loop = loop
    }

    /// Starts the thread; `setUp` runs on it before the loop starts.
    public func start(setUp: @escaping (EventLoop) -> Void) {
        body = { [loop] in
            setUp(loop)
            loop.run()
        }
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, nil, { arg in
            let me = Unmanaged<WorkerThread>.fromOpaque(arg!).takeRetainedValue()
            me.body?()
            me.body = nil
            me.done.withLock { me.finished = true }
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    public func join() { pthread_join(thread, nil) }
}
