import RemoraCore
@testable import RemoraH2
import XCTest

final class H2SessionTests: XCTestCase {
    func testRoundTripWithBodiesAndTrailers() {
        let p = Pair()
        let reqBody = pattern(100_000, seed: 1)
        let respBody = pattern(50_000, seed: 7)
        p.s.consumeAll = true
        p.c.consumeAll = true
        p.s.onHeaders = { s, b in
            guard b.kind == .trailers else { return }
            XCTAssertTrue(s.respond(stream: b.stream, headers: fields([(":status", "200"), ("x-resp", "1")]), endStream: false))
            respBody.withUnsafeBytes { s.sendData(stream: b.stream, $0) }
            s.endStream(stream: b.stream, trailers: fields([("x-resp-trailer", "done")]))
        }
        let id = p.client.request(headers: post(extra: [("x-req", "yes")]), endStream: false)
        XCTAssertEqual(id, 1)
        reqBody.withUnsafeBytes { p.client.sendData(stream: id, $0) }
        p.client.endStream(stream: id, trailers: fields([("x-req-trailer", "ok")]))
        XCTAssertEqual(p.client.openStreams, 1)
        XCTAssertTrue(p.pump())

        XCTAssertEqual(p.s.blocks.count, 2)
        XCTAssertEqual(p.s.blocks[0].kind, .request)
        XCTAssertEqual(p.s.blocks[0].value(":method"), "POST")
        XCTAssertEqual(p.s.blocks[0].value(":path"), "/upload")
        XCTAssertEqual(p.s.blocks[0].value("x-req"), "yes")
        XCTAssertFalse(p.s.blocks[0].endStream)
        XCTAssertEqual(p.s.blocks[1].kind, .trailers)
        XCTAssertEqual(p.s.blocks[1].value("x-req-trailer"), "ok")
        XCTAssertTrue(p.s.blocks[1].endStream)
        XCTAssertEqual(p.s.data[id], reqBody)

        XCTAssertEqual(p.c.blocks.map(\.kind), [.response, .trailers])
        XCTAssertEqual(p.c.blocks[0].value(":status"), "200")
        XCTAssertEqual(p.c.blocks[0].value("x-resp"), "1")
        XCTAssertEqual(p.c.blocks[1].value("x-resp-trailer"), "done")
        XCTAssertEqual(p.c.data[id], respBody)
        XCTAssertEqual(p.c.closed[id], 0)
        XCTAssertEqual(p.s.closed[id], 0)
        XCTAssertEqual(p.client.openStreams, 0)
        XCTAssertEqual(p.server.openStreams, 0)
        XCTAssertNil(p.server.abuse)
    }

    func testBodyWithoutTrailersEndsOnData() {
        let p = Pair()
        p.s.consumeAll = true
        p.s.onEnd = { s, id in
            XCTAssertTrue(s.respond(stream: id, headers: fields([(":status", "204")]), endStream: true))
        }
        let id = p.client.request(headers: post(), endStream: false)
        [UInt8]([1, 2, 3]).withUnsafeBytes { p.client.sendData(stream: id, $0) }
        p.client.endStream(stream: id, trailers: nil)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.s.ended, [id])
        XCTAssertEqual(p.s.data[id], [1, 2, 3])
        XCTAssertEqual(p.c.blocks.map(\.kind), [.response])
        XCTAssertTrue(p.c.blocks[0].endStream)
        XCTAssertEqual(p.c.closed[id], 0)
    }

    func testInformationalThenFinal() {
        let p = Pair()
        p.s.onHeaders = { s, b in
            XCTAssertTrue(s.respond(stream: b.stream, headers: fields([(":status", "103"), ("link", "</a.css>")]), endStream: false))
            XCTAssertTrue(s.respond(stream: b.stream, headers: fields([(":status", "200")]), endStream: false))
            [UInt8]([9, 9]).withUnsafeBytes { s.sendData(stream: b.stream, $0) }
            s.endStream(stream: b.stream, trailers: nil)
        }
        p.c.consumeAll = true
        let id = p.client.request(headers: get(), endStream: true)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.c.blocks.map(\.kind), [.informational, .response])
        XCTAssertEqual(p.c.blocks[0].value(":status"), "103")
        XCTAssertEqual(p.c.blocks[0].value("link"), "</a.css>")
        XCTAssertEqual(p.c.blocks[1].value(":status"), "200")
        XCTAssertEqual(p.c.data[id], [9, 9])
        XCTAssertEqual(p.c.ended, [id])
        XCTAssertEqual(p.c.closed[id], 0)
    }

    func testFlowControlFollowsConsume() {
        let p = Pair()
        XCTAssertTrue(p.pump()) // SETTINGS both ways
        let window = H2Settings().initialStreamWindow
        let total = 1_000_000
        let id = p.client.request(headers: post(), endStream: false)
        pattern(total).withUnsafeBytes { p.client.sendData(stream: id, $0) }
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.s.data[id]?.count, window, "the server took more than its stream window")
        XCTAssertEqual(p.client.queuedBytes(stream: id), total - window)
        XCTAssertTrue(p.c.sendRoom.isEmpty)

        p.server.consume(stream: id, count: window)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.s.data[id]?.count, 2 * window)
        XCTAssertEqual(p.client.queuedBytes(stream: id), total - 2 * window)

        // Consuming as it arrives lets the rest through; the queue drains and reports room.
        p.s.consumeAll = true
        p.server.consume(stream: id, count: window)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.s.data[id]?.count, total)
        XCTAssertEqual(p.s.data[id], pattern(total))
        XCTAssertEqual(p.client.queuedBytes(stream: id), 0)
        XCTAssertFalse(p.c.sendRoom.isEmpty)
        XCTAssertEqual(p.s.ended, [])
        p.client.endStream(stream: id, trailers: nil)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.s.ended, [id])
    }

    func testUnconsumedDataGoesBackToTheConnectionWindowOnClose() {
        var ss = H2Settings()
        ss.connectionWindow = 100_000
        ss.initialStreamWindow = 60_000
        let p = Pair(server: ss)
        XCTAssertTrue(p.pump())
        // Two streams each fill 60 000 of a 100 000 connection window; never consumed.
        p.s.onEnd = { s, id in _ = s.respond(stream: id, headers: fields([(":status", "200")]), endStream: true) }
        var ids: [Int32] = []
        for _ in 0..<3 {
            let id = p.client.request(headers: post(), endStream: false)
            pattern(50_000).withUnsafeBytes { p.client.sendData(stream: id, $0) }
            p.client.endStream(stream: id, trailers: nil)
            ids.append(id)
            XCTAssertTrue(p.pump())
        }
        // Without the give-back at close the third stream would stall at 0 bytes.
        for id in ids {
            XCTAssertEqual(p.s.data[id]?.count, 50_000, "stream \(id)")
            XCTAssertEqual(p.c.closed[id], 0)
        }
    }

    func testMaxConcurrentStreamsAndCanOpenStream() {
        var ss = H2Settings()
        ss.maxConcurrentStreams = 3
        let p = Pair(server: ss)
        XCTAssertEqual(p.client.remoteMaxConcurrentStreams, 100) // before the server's SETTINGS
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.client.remoteMaxConcurrentStreams, 3)
        var ids: [Int32] = []
        for _ in 0..<3 {
            XCTAssertTrue(p.client.canOpenStream)
            ids.append(p.client.request(headers: get(), endStream: true))
        }
        XCTAssertEqual(ids, [1, 3, 5])
        XCTAssertFalse(p.client.canOpenStream)
        XCTAssertEqual(p.client.request(headers: get(), endStream: true), -1)
        XCTAssertEqual(p.client.openStreams, 3)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.server.openStreams, 3)
        XCTAssertTrue(p.server.respond(stream: 3, headers: fields([(":status", "200")]), endStream: true))
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.c.closed[3], 0)
        XCTAssertEqual(p.client.openStreams, 2)
        XCTAssertTrue(p.client.canOpenStream)
        XCTAssertEqual(p.client.request(headers: get(), endStream: true), 7)
    }

    func testTooManyHeadersIsOversized() {
        var ss = H2Settings()
        ss.maxHeaders = 10
        let p = Pair(server: ss)
        p.s.onHeaders = { s, b in
            _ = s.respond(stream: b.stream, headers: fields([(":status", b.oversized ? "431" : "200")]), endStream: true)
        }
        let extra = (0..<20).map { ("x-h\($0)", "v\($0)") }
        let id = p.client.request(headers: get(extra: extra), endStream: true)
        let ok = p.client.request(headers: get(extra: Array(extra.prefix(6))), endStream: true)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.s.blocks.count, 2)
        XCTAssertTrue(p.s.blocks[0].oversized)
        XCTAssertTrue(p.s.blocks[0].fields.isEmpty)
        XCTAssertEqual(p.s.blocks[0].kind, .request)
        XCTAssertFalse(p.s.blocks[1].oversized)
        XCTAssertEqual(p.s.blocks[1].fields.count, 10)
        XCTAssertEqual(p.c.blocks.first { $0.stream == id }?.value(":status"), "431")
        XCTAssertEqual(p.c.blocks.first { $0.stream == ok }?.value(":status"), "200")
        XCTAssertEqual(p.c.closed[id], 0, "an oversized block must not reset the stream")
    }

    func testTooLargeHeaderListIsOversized() {
        var ss = H2Settings()
        ss.maxHeaderListBytes = 1000
        let p = Pair(server: ss)
        p.s.onHeaders = { s, b in
            _ = s.respond(stream: b.stream, headers: fields([(":status", b.oversized ? "431" : "200")]), endStream: true)
        }
        let id = p.client.request(headers: get(extra: [("x-big", String(repeating: "a", count: 2000))]), endStream: true)
        // name + value + 32 per field: 4 pseudo-headers (~200) + 800 is over, 700 is under.
        let over = p.client.request(headers: get(extra: [("x-b", String(repeating: "b", count: 800))]), endStream: true)
        let under = p.client.request(headers: get(extra: [("x-c", String(repeating: "c", count: 700))]), endStream: true)
        XCTAssertTrue(p.pump())
        let byStream = Dictionary(uniqueKeysWithValues: p.s.blocks.map { ($0.stream, $0) })
        XCTAssertEqual(byStream[id]?.oversized, true)
        XCTAssertEqual(byStream[over]?.oversized, true)
        XCTAssertEqual(byStream[under]?.oversized, false)
        XCTAssertEqual(byStream[under]?.value("x-c")?.count, 700)
        XCTAssertEqual(p.c.blocks.first { $0.stream == id }?.value(":status"), "431")
    }

    func testRapidResetEndsTheSession() {
        let p = Pair()
        XCTAssertTrue(p.pump())
        var failed = false
        var opened = 0
        outer: for _ in 0..<20 {
            var ids: [Int32] = []
            for _ in 0..<50 {
                let id = p.client.request(headers: get(), endStream: true)
                XCTAssertGreaterThan(id, 0)
                ids.append(id)
            }
            opened += ids.count
            if !p.pump() { failed = true; break outer }
            for id in ids { p.client.reset(stream: id, errorCode: 8) } // CANCEL
            if !p.pump() { failed = true; break outer }
        }
        XCTAssertTrue(failed, "the server kept accepting resets")
        XCTAssertEqual(p.server.abuse, "rapid-reset")
        XCTAssertLessThan(opened, 1000)
        let goAways = Raw.parse(p.fromServer).filter { $0.type == Raw.GOAWAY }
        XCTAssertEqual(goAways.count, 1)
        XCTAssertEqual(goAways.first?.goAway.1, 0xb, "GOAWAY must carry ENHANCE_YOUR_CALM")
        XCTAssertFalse(p.server.receive(UnsafeRawBufferPointer(start: nil, count: 0)) && p.server.abuse == nil)
    }

    func testResetsAfterResponsesAreNotAbuse() {
        let p = Pair()
        p.s.onHeaders = { s, b in
            _ = s.respond(stream: b.stream, headers: fields([(":status", "200")]), endStream: false)
        }
        XCTAssertTrue(p.pump())
        for _ in 0..<6 {
            var ids: [Int32] = []
            for _ in 0..<50 { ids.append(p.client.request(headers: get(), endStream: true)) }
            XCTAssertTrue(p.pump())
            for id in ids { p.client.reset(stream: id, errorCode: 8) }
            XCTAssertTrue(p.pump())
        }
        XCTAssertNil(p.server.abuse)
        XCTAssertEqual(p.s.closed.count, 300)
        XCTAssertEqual(p.server.openStreams, 0)
    }

    func testEmptyDataFlood() {
        let raw = RawServer()
        var bytes = RawServer.hello
        bytes += Raw.frame(Raw.HEADERS, Raw.END_HEADERS, 1,
                           Raw.block([(":method", "POST"), (":scheme", "http"), (":path", "/"), (":authority", "a")]))
        for _ in 0..<10 { bytes += Raw.frame(Raw.DATA, 0, 1) }
        XCTAssertTrue(raw.feed(bytes))
        XCTAssertNil(raw.session.abuse)
        XCTAssertEqual(raw.rec.blocks.count, 1)
        // A frame with payload resets the count.
        XCTAssertTrue(raw.feed(Raw.frame(Raw.DATA, 0, 1, [1]) + (0..<10).flatMap { _ in Raw.frame(Raw.DATA, 0, 1) }))
        XCTAssertNil(raw.session.abuse)
        XCTAssertFalse(raw.feed(Raw.frame(Raw.DATA, 0, 1)))
        XCTAssertEqual(raw.session.abuse, "empty-frames")
        let goAway = raw.output().first { $0.type == Raw.GOAWAY }
        XCTAssertEqual(goAway?.goAway.1, 0xb)
    }

    func testMalformedRequestIsReset() {
        let raw = RawServer()
        var bytes = RawServer.hello
        // No :path.
        bytes += Raw.frame(Raw.HEADERS, Raw.END_HEADERS | Raw.END_STREAM, 1,
                           Raw.block([(":method", "GET"), (":scheme", "http"), (":authority", "a")]))
        // A valid one after it still works.
        bytes += Raw.frame(Raw.HEADERS, Raw.END_HEADERS | Raw.END_STREAM, 3,
                           Raw.block([(":method", "GET"), (":scheme", "http"), (":path", "/ok"), (":authority", "a")]))
        XCTAssertTrue(raw.feed(bytes))
        XCTAssertEqual(raw.rec.blocks.map(\.stream), [3])
        let rst = raw.output().filter { $0.type == Raw.RST_STREAM }
        XCTAssertEqual(rst.map(\.stream), [1])
        XCTAssertEqual(rst.first?.u32, 1, "PROTOCOL_ERROR")
        XCTAssertNil(raw.rec.closed[1], "the delegate never saw stream 1")
    }

    func testShutdownNoticeThenGoAway() {
        let p = Pair()
        let id = p.client.request(headers: get(), endStream: true)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.s.blocks.count, 1)
        p.server.shutdownNotice()
        XCTAssertTrue(p.pump())
        XCTAssertTrue(p.client.receivedGoAway)
        XCTAssertEqual(Raw.parse(p.fromServer).first { $0.type == Raw.GOAWAY }?.goAway.0, 0x7fff_ffff)
        XCTAssertFalse(p.client.canOpenStream)
        XCTAssertEqual(p.client.request(headers: get(), endStream: true), -1)
        // The stream in flight still completes.
        XCTAssertTrue(p.server.respond(stream: id, headers: fields([(":status", "200")]), endStream: true))
        p.server.goAway(errorCode: 0)
        XCTAssertTrue(p.pump())
        let final = Raw.parse(p.fromServer).first { $0.type == Raw.GOAWAY }
        XCTAssertEqual(final?.goAway.0, UInt32(id))
        XCTAssertEqual(final?.goAway.1, 0)
        XCTAssertEqual(p.c.closed[id], 0)
        XCTAssertEqual(p.c.blocks.first?.value(":status"), "200")
        XCTAssertFalse(p.server.wantsRead)
        XCTAssertFalse(p.server.wantsWrite)
        XCTAssertNil(p.server.abuse)
    }

    func testGoAwayRefusesStreamsAboveLastId() {
        let p = Pair()
        XCTAssertTrue(p.pump())
        let first = p.client.request(headers: get(), endStream: true)
        XCTAssertTrue(p.pump())
        p.server.goAway(errorCode: 0)      // last stream id = first
        let second = p.client.request(headers: get(), endStream: true)
        XCTAssertTrue(p.pump())
        XCTAssertTrue(p.client.receivedGoAway)
        XCTAssertEqual(p.c.closed[second], 7, "REFUSED_STREAM for a stream above the last id")
        XCTAssertNil(p.c.closed[first])
        XCTAssertEqual(p.s.blocks.count, 1)
    }

    func testPingFloodWithoutReading() {
        let raw = RawServer()
        var bytes = RawServer.hello
        for i in 0..<5000 { bytes += Raw.frame(Raw.PING, 0, 0, [UInt8](repeating: UInt8(i & 0xff), count: 8)) }
        // Fed in socket-sized pieces; the server's output is never drained.
        var ok = true
        var i = 0
        while ok && i < bytes.count {
            let end = min(i + 16 * 1024, bytes.count)
            ok = raw.feed(Array(bytes[i..<end]))
            i = end
        }
        XCTAssertFalse(ok, "5000 unanswered PINGs were accepted")
        XCTAssertEqual(raw.session.abuse, "flood")
    }

    func testResetByUsClosesAndDropsData() {
        let p = Pair()
        p.s.onHeaders = { s, b in s.reset(stream: b.stream, errorCode: 8) }
        let id = p.client.request(headers: post(), endStream: false)
        pattern(40_000).withUnsafeBytes { p.client.sendData(stream: id, $0) }
        p.client.endStream(stream: id, trailers: nil)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.s.closed[id], 8)
        XCTAssertNil(p.s.data[id])
        XCTAssertEqual(p.c.closed[id], 8)
        // The connection window is intact: a new stream can send a full window.
        p.s.onHeaders = nil
        p.s.consumeAll = true
        let id2 = p.client.request(headers: post(), endStream: false)
        pattern(200_000).withUnsafeBytes { p.client.sendData(stream: id2, $0) }
        p.client.endStream(stream: id2, trailers: nil)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.s.data[id2]?.count, 200_000)
    }

    func testSendRoomLetsTheCallerStream() {
        let p = Pair()
        let total = 3_000_000
        var produced = 0
        func fill(_ s: H2Session, _ id: Int32) {
            while produced < total && s.queuedBytes(stream: id) < 64 * 1024 {
                let n = min(16 * 1024, total - produced)
                pattern(n, seed: produced).withUnsafeBytes { s.sendData(stream: id, $0) }
                produced += n
            }
            if produced == total { s.endStream(stream: id, trailers: nil) }
        }
        p.s.onHeaders = { s, b in
            XCTAssertTrue(s.respond(stream: b.stream, headers: fields([(":status", "200")]), endStream: false))
            fill(s, b.stream)
        }
        p.s.onSendRoom = { s, id in fill(s, id) }
        p.c.consumeAll = true
        let id = p.client.request(headers: get("/bytes"), endStream: true)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.c.data[id]?.count, total)
        XCTAssertEqual(p.c.closed[id], 0)
        XCTAssertEqual(p.pool.freeBlocks > 0, true)
    }

    func testHeaderViewLookup() {
        let p = Pair()
        var seen: String?
        var missing = true
        final class Peek: H2SessionDelegate {
            var body: (H2HeaderView) -> Void = { _ in }
            func h2Headers(_ s: H2Session, stream: Int32, kind: H2HeadersKind, headers: H2HeaderView, endStream: Bool) { body(headers) }
            func h2Data(_ s: H2Session, stream: Int32, data: UnsafeRawBufferPointer) {}
            func h2EndStream(_ s: H2Session, stream: Int32) {}
            func h2StreamClosed(_ s: H2Session, stream: Int32, errorCode: UInt32) {}
            func h2SendRoom(_ s: H2Session, stream: Int32) {}
        }
        let peek = Peek()
        peek.body = { h in
            seen = h.value("x-b").map { String(decoding: $0, as: UTF8.self) }
            missing = h.value("x-none") == nil
        }
        p.server.delegate = peek
        var l = get(extra: [("x-a", "1")])
        let name: [UInt8] = Array("X-B".utf8), value: [UInt8] = Array("two".utf8)
        name.withUnsafeBytes { n in value.withUnsafeBytes { l.append(lowercasing: n, $0) } }
        XCTAssertEqual(l.count, 6)
        XCTAssertEqual(l[5].name, "x-b")
        _ = p.client.request(headers: l, endStream: true)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(seen, "two")
        XCTAssertTrue(missing)
        withExtendedLifetime(peek) {}
    }

    /// Protocol errors nghttp2 handles itself: it queues GOAWAY and ignores the rest of
    /// the input; receive() reports it from the next call on, and once the GOAWAY is
    /// written the session wants neither to read nor to write (the caller closes).
    func testProtocolErrorsEndTheSession() {
        let cases: [(String, [UInt8], UInt32)] = [
            ("DATA on stream 0", Raw.frame(Raw.DATA, 0, 0, [1]), 1),
            ("HEADERS on an even stream", Raw.frame(Raw.HEADERS, Raw.END_HEADERS | Raw.END_STREAM, 2,
                Raw.block([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a")])), 1),
            ("SETTINGS of bad length", Raw.frame(Raw.SETTINGS, 0, 0, [1, 2, 3]), 6),
            ("window overflow", Raw.frame(Raw.WINDOW_UPDATE, 0, 0, [0x7f, 0xff, 0xff, 0xff]), 3),
            ("bad HPACK", Raw.frame(Raw.HEADERS, Raw.END_HEADERS, 1, [0xff, 0xff, 0xff, 0xff]), 9),
        ]
        for (name, bytes, code) in cases {
            let raw = RawServer()
            XCTAssertTrue(raw.feed(RawServer.hello), name)
            _ = raw.feed(bytes)
            let goAway = raw.output().first { $0.type == Raw.GOAWAY }
            XCTAssertEqual(goAway?.goAway.1, code, name)
            XCTAssertFalse(raw.session.wantsRead, name)
            XCTAssertFalse(raw.session.wantsWrite, name)
            XCTAssertFalse(raw.feed(Raw.frame(Raw.PING, 0, 0, [UInt8](repeating: 0, count: 8))), name)
            XCTAssertNil(raw.session.abuse, name)
        }
    }

    func testBadPrefaceFails() {
        let raw = RawServer()
        XCTAssertFalse(raw.feed(Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8)))
    }

    /// nghttp2's own RST_STREAM token bucket (burst 1000) also ends a session whose
    /// resets are not premature; it is labelled "rapid-reset" too.
    func testResetRateLimitOfNghttp2() {
        let p = Pair()
        p.s.onHeaders = { s, b in
            _ = s.respond(stream: b.stream, headers: fields([(":status", "200")]), endStream: false)
        }
        XCTAssertTrue(p.pump())
        for _ in 0..<25 where !p.client.receivedGoAway {
            var ids: [Int32] = []
            for _ in 0..<50 { ids.append(p.client.request(headers: get(), endStream: true)) }
            XCTAssertTrue(p.pump())
            for id in ids { p.client.reset(stream: id, errorCode: 8) }
            XCTAssertTrue(p.pump())
        }
        XCTAssertEqual(p.server.abuse, "rapid-reset")
        XCTAssertEqual(p.server.prematureResets, 0)
        XCTAssertGreaterThan(p.server.resetsReceived, 1000)
        let goAway = Raw.parse(p.fromServer).first { $0.type == Raw.GOAWAY }
        XCTAssertEqual(goAway?.goAway.1, 2, "nghttp2 answers with INTERNAL_ERROR")
        // Reported to the caller from the next receive on.
        XCTAssertFalse(Raw.frame(Raw.PING, 0, 0, [UInt8](repeating: 0, count: 8)).withUnsafeBytes { p.server.receive($0) })
    }

    func testResetBeforeHeadersWereSent() {
        let p = Pair()
        XCTAssertTrue(p.pump())
        let id = p.client.request(headers: get(), endStream: true)
        p.client.reset(stream: id, errorCode: 8)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.c.closed[id], 8)
        XCTAssertTrue(p.s.blocks.isEmpty, "a cancelled request never reaches the server")
        XCTAssertEqual(p.client.openStreams, 0)
    }

    func testDataAfterEndStreamIsDropped() {
        let p = Pair()
        p.s.consumeAll = true
        let id = p.client.request(headers: post(), endStream: false)
        [UInt8]([1, 2]).withUnsafeBytes { p.client.sendData(stream: id, $0) }
        p.client.endStream(stream: id, trailers: nil)
        [UInt8]([3]).withUnsafeBytes { p.client.sendData(stream: id, $0) }
        XCTAssertEqual(p.client.queuedBytes(stream: id), 2)
        XCTAssertTrue(p.pump())
        XCTAssertEqual(p.s.data[id], [1, 2])
        XCTAssertEqual(p.s.ended, [id])
    }

    /// The owner may let go of the session from a callback (its connection closing):
    /// the session stays valid until receive/send returns.
    func testSessionReleasedInsideACallback() {
        final class Owner: H2SessionDelegate {
            var session: H2Session?
            func h2Headers(_ s: H2Session, stream: Int32, kind: H2HeadersKind, headers: H2HeaderView, endStream: Bool) {
                session = nil
            }
            func h2Data(_ s: H2Session, stream: Int32, data: UnsafeRawBufferPointer) {}
            func h2EndStream(_ s: H2Session, stream: Int32) {}
            func h2StreamClosed(_ s: H2Session, stream: Int32, errorCode: UInt32) {}
            func h2SendRoom(_ s: H2Session, stream: Int32) {}
        }
        let pool = BufferPool()
        let owner = Owner()
        owner.session = H2Session(role: .server, settings: H2Settings(), pool: pool, delegate: owner)
        weak var weakSession = owner.session
        let bytes = RawServer.hello + Raw.frame(Raw.HEADERS, Raw.END_HEADERS | Raw.END_STREAM, 1,
            Raw.block([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a")]))
        XCTAssertTrue(bytes.withUnsafeBytes { owner.session!.receive($0) })
        XCTAssertNil(owner.session)
        XCTAssertNil(weakSession)
    }
}
