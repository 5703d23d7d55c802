import RemoraCore
import RemoraH2
import RemoraHTTP1
import RemoraIO

/// One exchange's stream on a shared HTTP/2 upstream connection. Response DATA is given
/// back to the windows only once the client side has room, so a slow client slows the
/// backend instead of growing the proxy.
final class H2UpstreamStream: UpstreamRequest, DeferredTask {
    unowned(unsafe) let conn: H2UpstreamConnection
    private(set) var id: Int32 = -1
    private var owner: ResponseSink?
    private var headRequest = false
    private var requestEnded = false
    private var responseEnded = false
    private var done = false
    private var unconsumed = 0
    private(set) var pausedForRoom = false
    private var resumeScheduled = false
    private var response = ResponseHead()

    /// Request bytes queued in nghttp2 for this stream before the client side must wait.
    static let sendBudget = 128 * 1024

    init(connection: H2UpstreamConnection) { conn = connection }

    private var session: H2Session { conn.session }

    // MARK: UpstreamRequest

    func attach(_ sink: ResponseSink, method: Method) {
        owner = sink
        headRequest = method == .head
    }

    func sendHead(_ head: RequestHead, buf: UnsafeRawBufferPointer, ctx: HeadWriter.RequestContext, random: inout FastRandom) {
        H2HeadWriter.request(head, buf: buf, ctx: ctx, into: &conn.fields, random: &random)
        requestEnded = head.framing == .none
        id = session.request(headers: conn.fields, endStream: requestEnded)
        guard id >= 0 else {
            // No stream could be opened (the peer said GOAWAY meanwhile): fail after this call.
            done = true
            conn.finished(self)
            conn.worker.loop.schedule(FailLater(self))
            return
        }
        conn.register(self, id: id)
        conn.needsSend()
    }

    func sendBody(_ data: UnsafeRawBufferPointer) {
        guard id >= 0, !done, !requestEnded else { return }
        session.sendData(stream: id, data)
        conn.needsSend()
    }

    func sendEnd(trailers: Trailers?) {
        guard id >= 0, !done, !requestEnded else { return }
        requestEnded = true
        var list: H2FieldList?
        if let trailers {
            conn.fields.removeAll()
            trailers.appendLowercased(to: &conn.fields)
            if conn.fields.count > 0 { list = conn.fields }
        }
        session.endStream(stream: id, trailers: list)
        conn.needsSend()
    }

    var sendRoom: Int { id >= 0 && !done ? H2UpstreamStream.sendBudget - session.queuedBytes(stream: id) : 0 }

    func flush() { conn.needsSend() }

    func scheduleResume() {
        guard !resumeScheduled, !done else { return }
        resumeScheduled = true
        conn.worker.loop.schedule(self)
    }

    func runDeferred() {
        resumeScheduled = false
        guard !done else { return }
        giveBackWindow()
    }

    /// The client side gave up: cancel the stream.
    func abandon() {
        owner = nil
        guard !done else { return }
        done = true
        if id >= 0 {
            session.reset(stream: id, errorCode: 8)   // CANCEL
            conn.needsSend()
        }
        conn.finished(self)
    }

    // MARK: from the connection

    func receivedResponse(_ view: H2HeaderView, endStream: Bool) {
        guard let ds = owner else { return }
        H2Heads.response(view, endStream: endStream, headRequest: headRequest, into: &response)
        ds.upstreamResponseHead(response, buf: view.bytes)
        if endStream { finishResponse() }
    }

    func receivedData(_ data: UnsafeRawBufferPointer) {
        unconsumed += data.count
        guard let ds = owner else { giveBackWindow(); return }
        ds.upstreamResponseData(data)
        ds.flushResponse()
        giveBackWindow()
    }

    func receivedTrailers(_ view: H2HeaderView) {
        owner?.upstreamResponseTrailers(.h2(view))
        finishResponse()
    }

    func receivedEnd() { finishResponse() }

    private func finishResponse() {
        guard !responseEnded else { return }
        responseEnded = true
        let ds = owner
        owner = nil
        if !done {
            done = true
            if !requestEnded, id >= 0 { session.reset(stream: id, errorCode: 0) }   // answered early: NO_ERROR
            conn.finished(self)
        }
        ds?.upstreamResponseEnd(reusable: false)
    }

    func streamClosed(errorCode: UInt32) {
        guard !responseEnded else { return }
        connectionFailed(errorCode == 7 ? .refused : .reset)   // 7: REFUSED_STREAM
    }

    func connectionFailed(_ f: UpstreamFailure) {
        let ds = owner
        owner = nil
        if !done {
            done = true
            conn.finished(self)
        }
        ds?.upstreamFailed(f, reused: false)
    }

    /// Gives received DATA back to the windows while the client side has room.
    private func giveBackWindow() {
        guard unconsumed > 0, id >= 0 else { return }
        if let ds = owner, ds.responseRoom <= 0 {
            pausedForRoom = true
            return
        }
        pausedForRoom = false
        session.consume(stream: id, count: unconsumed)
        unconsumed = 0
        conn.needsSend()
    }

    /// nghttp2 took request bytes: the client side may send more.
    func sendRoomOpened() { owner?.upstreamSendRoom() }
}

/// Reports a stream that could not be opened, outside the call that tried.
private final class FailLater: DeferredTask {
    let stream: H2UpstreamStream
    init(_ s: H2UpstreamStream) { stream = s }
    func runDeferred() { stream.connectionFailed(.refused) }
}
