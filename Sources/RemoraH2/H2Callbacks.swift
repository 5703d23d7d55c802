import CNGHTTP2
import RemoraCore

// nghttp2 calls plain C function pointers: these closures capture nothing and find
// their session through user_data (passUnretained in H2Session.init).

@inline(__always) private func session(_ user: UnsafeMutableRawPointer?) -> H2Session {
    Unmanaged<H2Session>.fromOpaque(user!).takeUnretainedValue()
}

/// One callbacks table for every session (nghttp2 copies it at session creation).
let h2Callbacks: OpaquePointer = {
    var cbs: OpaquePointer?
    precondition(nghttp2_session_callbacks_new(&cbs) == 0, "nghttp2_session_callbacks_new")
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs) { _, frame, user in
        session(user).onBeginHeaders(frame!)
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs) { _, frame, name, namelen, value, valuelen, _, user in
        session(user).onHeader(UnsafeRawBufferPointer(start: name, count: namelen),
                               UnsafeRawBufferPointer(start: value, count: valuelen))
    }
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs) { _, frame, user in
        session(user).onFrameRecv(frame!)
    }
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs) { _, _, stream, data, len, user in
        session(user).onData(stream, UnsafeRawBufferPointer(start: data, count: len))
    }
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs) { _, stream, error, user in
        session(user).onStreamClose(stream, error)
    }
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs) { _, frame, user in
        session(user).onFrameSend(frame!)
    }
    return cbs!
}()

/// The data provider of every stream that sends a body: it reads the stream's queue.
let h2Provider = nghttp2_data_provider(
    source: nghttp2_data_source(ptr: nil),
    read_callback: { _, stream, buf, length, flags, _, user in
        session(user).readData(stream, buf!, length, flags!)
    })

extension H2Session {
    func onBeginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        headerBytes.clear()
        headerCount = 0
        headerListBytes = 0
        headerOversized = false
        headerStatus = 0
        if role == .server && frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue)
            && frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
            let id = frame.pointee.hd.stream_id
            if id > goAwayLastStream {
                // Not tracked: its headers and DATA are dropped (DATA consumed at once).
                _ = nghttp2_submit_rst_stream(ng, 0, id, NGHTTP2_REFUSED_STREAM.rawValue)
                return 0
            }
            peerStreams += 1
            _ = takeStream(id)
        }
        return 0
    }

    func onHeader(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Int32 {
        if role == .client && name.count == 7 && name.elementsEqual(":status".utf8) {
            var code = 0
            for b in value where b &- 48 < 10 { code = code * 10 + Int(b &- 48) }
            headerStatus = code
        }
        if headerOversized { return 0 }
        headerListBytes += name.count + value.count + 32
        if headerListBytes > settings.maxHeaderListBytes || headerCount >= settings.maxHeaders {
            // Stop copying; the block is delivered as oversized (the caller answers 431).
            headerOversized = true
            headerBytes.clear()
            return 0
        }
        if headerFields == nil {
            headerFields = .allocate(capacity: max(settings.maxHeaders, 1))
        }
        let n0 = headerBytes.count
        headerBytes.append(name)
        let v0 = headerBytes.count
        headerBytes.append(value)
        (headerFields! + headerCount).initialize(to: H2Field(name: n0..<v0, value: v0..<headerBytes.count))
        headerCount += 1
        return 0
    }

    func onFrameRecv(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        let endStream = hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(hd.type) {
        case NGHTTP2_DATA.rawValue:
            // Padding-only frames count as empty too.
            if Int(hd.length) - Int(frame.pointee.data.padlen) > 0 {
                emptyDataRun = 0
            } else if !endStream {
                emptyDataRun += 1
                if emptyDataRun > H2Session.emptyDataLimit {
                    abort(abuse: "empty-frames")
                    return 0
                }
            }
            if endStream, let s = streams[hd.stream_id], s.visible, !s.resetByUs {
                delegate.h2EndStream(self, stream: hd.stream_id)
            }
        case NGHTTP2_HEADERS.rawValue:
            deliverHeaders(frame, endStream: endStream)
        case NGHTTP2_RST_STREAM.rawValue:
            resetsReceived += 1
            if role == .server, let s = streams[hd.stream_id], !s.responded {
                prematureResets += 1
                if prematureResets >= H2Session.rapidResetThreshold && prematureResets * 2 >= peerStreams {
                    abort(abuse: "rapid-reset")
                }
            }
        case NGHTTP2_GOAWAY.rawValue:
            receivedGoAway = true
        default:
            break
        }
        return 0
    }

    private func deliverHeaders(_ frame: UnsafePointer<nghttp2_frame>, endStream: Bool) {
        let id = frame.pointee.hd.stream_id
        defer { headerBytes.clear() }
        guard let s = streams[id], !s.resetByUs else { return }
        let kind: H2HeadersKind
        switch role {
        case .server:
            kind = frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST ? .request : .trailers
        case .client:
            kind = headerStatus == 0 ? .trailers : headerStatus < 200 ? .informational : .response
        }
        if !s.visible {
            s.visible = true
            visibleStreams += 1
        }
        let fields = UnsafeBufferPointer(start: headerFields, count: headerOversized ? 0 : headerCount)
        let view = H2HeaderView(bytes: headerBytes.readable, fields: fields, oversized: headerOversized)
        delegate.h2Headers(self, stream: id, kind: kind, headers: view, endStream: endStream)
    }

    func onData(_ id: Int32, _ data: UnsafeRawBufferPointer) -> Int32 {
        guard let s = streams[id], s.visible, !s.resetByUs else {
            // Nobody will consume these: give them back now.
            _ = nghttp2_session_consume(ng, id, data.count)
            return 0
        }
        s.unconsumed += data.count
        delegate.h2Data(self, stream: id, data: data)
        return 0
    }

    func onStreamClose(_ id: Int32, _ errorCode: UInt32) -> Int32 {
        guard let s = streams.removeValue(forKey: id) else { return 0 }
        // DATA the caller never consumed would shrink the connection window for good.
        if s.unconsumed > 0 { _ = nghttp2_session_consume_connection(ng, s.unconsumed) }
        let visible = s.visible
        recycle(s)
        if visible {
            visibleStreams -= 1
            delegate.h2StreamClosed(self, stream: id, errorCode: errorCode)
        }
        return 0
    }

    func onFrameSend(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        guard frame.pointee.hd.type == UInt8(NGHTTP2_GOAWAY.rawValue) else { return 0 }
        sentGoAway = true
        let code = frame.pointee.goaway.error_code
        guard code != NGHTTP2_NO_ERROR.rawValue else { return 0 }
        // nghttp2's own RST_STREAM rate limit answers with INTERNAL_ERROR once the
        // token bucket (burst resetBurst) is empty.
        if abuse == nil && role == .server && code == NGHTTP2_INTERNAL_ERROR.rawValue
            && UInt64(resetsReceived) >= H2Session.resetBurst {
            abuse = "rapid-reset"
        }
        failed = true
        return 0
    }

    func readData(_ id: Int32, _ buf: UnsafeMutablePointer<UInt8>, _ length: Int,
                  _ flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let s = streams[id], !s.resetByUs else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        let n = min(length, s.queue.count)
        if n > 0 {
            UnsafeMutableRawPointer(buf).copyMemory(from: s.queue.readable.baseAddress!, byteCount: n)
            s.queue.consume(n)
            if !s.ended && s.queue.count < H2Session.sendLowWater {
                delegate.h2SendRoom(self, stream: id)
            }
        }
        if s.queue.isEmpty && !s.resetByUs {
            if s.ended {
                flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                s.hasProvider = false
                if let t = s.trailers {
                    s.trailers = nil
                    flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                    _ = withNV(t) { nghttp2_submit_trailer(ng, id, $0, $1) }
                }
            } else if n == 0 {
                s.deferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
        }
        return n
    }
}
