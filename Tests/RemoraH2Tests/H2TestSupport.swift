import RemoraCore
@testable import RemoraH2
import XCTest

/// Records everything a session reports, and lets a test react to it.
final class Recorder: H2SessionDelegate {
    struct Block {
        var stream: Int32
        var kind: H2HeadersKind
        var fields: [(String, String)]
        var oversized: Bool
        var endStream: Bool
        func value(_ name: String) -> String? { fields.first { $0.0 == name }?.1 }
    }

    var blocks: [Block] = []
    var data: [Int32: [UInt8]] = [:]
    var ended: [Int32] = []
    var closed: [Int32: UInt32] = [:]
    var sendRoom: [Int32] = []
    var onHeaders: ((H2Session, Block) -> Void)?
    var onData: ((H2Session, Int32, Int) -> Void)?
    var onEnd: ((H2Session, Int32) -> Void)?
    var onSendRoom: ((H2Session, Int32) -> Void)?
    var consumeAll = false

    func h2Headers(_ s: H2Session, stream: Int32, kind: H2HeadersKind, headers: H2HeaderView, endStream: Bool) {
        let fields = headers.fields.map { (headers.string($0.name), headers.string($0.value)) }
        let b = Block(stream: stream, kind: kind, fields: fields, oversized: headers.oversized, endStream: endStream)
        blocks.append(b)
        onHeaders?(s, b)
    }

    func h2Data(_ s: H2Session, stream: Int32, data d: UnsafeRawBufferPointer) {
        data[stream, default: []].append(contentsOf: d)
        if consumeAll { s.consume(stream: stream, count: d.count) }
        onData?(s, stream, d.count)
    }

    func h2EndStream(_ s: H2Session, stream: Int32) {
        ended.append(stream)
        onEnd?(s, stream)
    }

    func h2StreamClosed(_ s: H2Session, stream: Int32, errorCode: UInt32) {
        XCTAssertNil(closed[stream], "stream \(stream) closed twice")
        closed[stream] = errorCode
    }

    func h2SendRoom(_ s: H2Session, stream: Int32) {
        sendRoom.append(stream)
        onSendRoom?(s, stream)
    }
}

/// A client and a server session joined in memory.
final class Pair {
    let pool = BufferPool()
    let client: H2Session
    let server: H2Session
    let c = Recorder()
    let s = Recorder()
    /// The last bytes each side produced (for frame checks).
    var fromServer: [UInt8] = []
    var fromClient: [UInt8] = []

    init(client cs: H2Settings = H2Settings(), server ss: H2Settings = H2Settings()) {
        client = H2Session(role: .client, settings: cs, pool: pool, delegate: c)
        server = H2Session(role: .server, settings: ss, pool: pool, delegate: s)
    }

    /// Moves bytes both ways until neither side has anything to send. Returns false
    /// when a receive failed (the failing side's output is then left in fromX).
    @discardableResult
    func pump(rounds: Int = 10_000) -> Bool {
        let buf = ByteBuffer(capacity: 64 * 1024)
        for _ in 0..<rounds {
            var moved = false
            buf.clear()
            XCTAssertTrue(client.send(into: buf, limit: 1 << 30))
            if !buf.isEmpty {
                moved = true
                fromClient = buf.bytes
                if !server.receive(buf.readable) {
                    buf.clear()
                    _ = server.send(into: buf, limit: 1 << 30)
                    fromServer = buf.bytes
                    return false
                }
            }
            buf.clear()
            XCTAssertTrue(server.send(into: buf, limit: 1 << 30))
            if !buf.isEmpty {
                moved = true
                fromServer = buf.bytes
                if !client.receive(buf.readable) {
                    buf.clear()
                    _ = client.send(into: buf, limit: 1 << 30)
                    fromClient = buf.bytes
                    return false
                }
            }
            if !moved { return true }
        }
        XCTFail("pump did not settle")
        return false
    }
}

func fields(_ pairs: [(String, String)]) -> H2FieldList {
    var l = H2FieldList()
    for (n, v) in pairs { l.append(n, v) }
    return l
}

func get(_ path: String = "/", extra: [(String, String)] = []) -> H2FieldList {
    fields([(":method", "GET"), (":scheme", "http"), (":authority", "example.test"), (":path", path)] + extra)
}

func post(_ path: String = "/upload", extra: [(String, String)] = []) -> H2FieldList {
    fields([(":method", "POST"), (":scheme", "http"), (":authority", "example.test"), (":path", path)] + extra)
}

func pattern(_ n: Int, seed: Int = 0) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) } }

// MARK: raw frames

enum Raw {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let DATA: UInt8 = 0, HEADERS: UInt8 = 1, RST_STREAM: UInt8 = 3, SETTINGS: UInt8 = 4
    static let PING: UInt8 = 6, GOAWAY: UInt8 = 7, WINDOW_UPDATE: UInt8 = 8
    static let END_STREAM: UInt8 = 1, END_HEADERS: UInt8 = 4, ACK: UInt8 = 1

    static func frame(_ type: UInt8, _ flags: UInt8, _ stream: UInt32, _ payload: [UInt8] = []) -> [UInt8] {
        let n = payload.count
        return [UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff), type, flags,
                UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)] + payload
    }

    /// HPACK "literal header field without indexing, new name" (lengths < 127, no Huffman).
    static func literal(_ name: String, _ value: String) -> [UInt8] {
        [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
    }

    static func block(_ pairs: [(String, String)]) -> [UInt8] { pairs.flatMap { literal($0.0, $0.1) } }

    struct Frame {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var payload: [UInt8]
        var u32: UInt32 { payload.count >= 4 ? UInt32(payload[0]) << 24 | UInt32(payload[1]) << 16 | UInt32(payload[2]) << 8 | UInt32(payload[3]) : 0 }
        /// GOAWAY: (last stream id, error code).
        var goAway: (UInt32, UInt32) {
            let e = payload.count >= 8 ? UInt32(payload[4]) << 24 | UInt32(payload[5]) << 16 | UInt32(payload[6]) << 8 | UInt32(payload[7]) : 0
            return (u32 & 0x7fff_ffff, e)
        }
    }

    /// Splits serialised frames (a client's output may start with the preface).
    static func parse(_ bytes: [UInt8]) -> [Frame] {
        var i = bytes.starts(with: preface) ? preface.count : 0
        var out: [Frame] = []
        while i + 9 <= bytes.count {
            let n = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            guard i + 9 + n <= bytes.count else { break }
            let sid = UInt32(bytes[i + 5] & 0x7f) << 24 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 8 | UInt32(bytes[i + 8])
            out.append(Frame(type: bytes[i + 3], flags: bytes[i + 4], stream: sid, payload: Array(bytes[(i + 9)..<(i + 9 + n)])))
            i += 9 + n
        }
        return out
    }
}

/// A server session fed raw bytes.
final class RawServer {
    let pool = BufferPool()
    let rec = Recorder()
    let session: H2Session
    init(_ settings: H2Settings = H2Settings()) {
        session = H2Session(role: .server, settings: settings, pool: pool, delegate: rec)
    }
    func feed(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { session.receive($0) } }
    func output() -> [Raw.Frame] {
        let b = ByteBuffer(capacity: 64 * 1024)
        _ = session.send(into: b, limit: 1 << 30)
        return Raw.parse(b.bytes)
    }
    /// Preface plus an empty SETTINGS frame.
    static let hello = Raw.preface + Raw.frame(Raw.SETTINGS, 0, 0)
}
