import RemoraCore
import RemoraIO
import RemoraPolicy

/// One listening socket on one worker (each worker has its own, SO_REUSEPORT).
final class ListenerRuntime: EventHandler {
    unowned let worker: ProxyWorker
    let fd: Int32
    let spec: ListenerSpec
    private var registration = EventLoop.Registration.none
    private var closed = false

    init(worker: ProxyWorker, fd: Int32, spec: ListenerSpec) {
        self.worker = worker
        self.fd = fd
        self.spec = spec
        // Level-triggered: a burst beyond one batch is picked up on the next iteration.
        registration = worker.loop.register(fd: fd, events: IOEvents.readable, handler: self)
    }

    func handleEvent(_ events: UInt32) {
        for _ in 0..<64 {
            guard !closed, let (cfd, peer) = Socket.accept(fd) else { return }
            if worker.downstreamCount >= worker.limits.maxConnections {
                Socket.close(cfd)
                continue
            }
            _ = DownstreamConnection(worker: worker, fd: cfd, peer: peer, listener: self)
        }
    }

    /// Index of this listener in the worker's current snapshot (listeners are matched by
    /// name, so a configuration change that keeps the listener keeps serving it).
    func listenerIndex(in st: ProxyState) -> Int? {
        st.snapshot.listeners.firstIndex { $0.name == spec.name }
    }

    func close() {
        guard !closed else { return }
        closed = true
        worker.loop.unregister(fd: fd, registration: registration)
        Socket.close(fd)
    }
}
