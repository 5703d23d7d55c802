"""Raw HTTP/2 peers for Remora's h2 end-to-end tests, built on the `h2` library
(h2, hpack, hyperframe) and plain sockets.

  H2Client    h2c prior-knowledge client over a blocking socket, driven by pump()/wait().
              Validation of outbound headers is off, so a test can send malformed
              requests; `send_raw` puts hand-built frames (hyperframe) on the wire
              without touching the h2 state (PING/SETTINGS/empty-DATA floods). GOAWAY
              frames are taken out of the byte stream before h2 sees them, so frames
              that follow a GOAWAY (a drain: the in-flight stream's DATA) are still
              processed; every GOAWAY is recorded in `goaways`.
  H2Backend   in-process, threaded h2c server (one thread per connection). Records each
              request (headers, body length and sha256, trailers, reset) and answers like
              `remora echo` (JSON body with "protocol": "HTTP/2", /status/N, /delay/MS,
              /bytes/N), plus /trailers/N: N body bytes followed by response trailers
              `x-checksum: <sha256 of the body>` and `x-trailer-two: end`.

Helpers: frame building (`frame_ping`, `frame_settings`, `frame_empty_data`, ...),
`scan_frames` (split raw bytes into frames), `read_h1_response_with_trailers` (HTTP/1.1
chunked response with its trailer section, on a harness.RawConn), `parse_h2load`,
`start_proxy` (a Proxy with ServiceEntries of a given port protocol, VirtualServices,
optional `limits` and extra resources) and `h2_service_entry`/`h2_upgrade_rule`.

`python3 h2_peers.py selftest` checks the client and server against each other.
"""
from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import struct
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import DataFrame, PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import harness  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_GOAWAY = 0x7
FRAME_RST_STREAM = 0x3
FRAME_SETTINGS = 0x4
FRAME_PING = 0x6

NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB

ERROR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
               4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR",
               7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR",
               11: "ENHANCE_YOUR_CALM", 12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}


def err_name(code) -> str:
    if code is None:
        return "None"
    code = int(code)
    return f"{ERROR_NAMES.get(code, 'UNKNOWN')}(0x{code:x})"


# ---------------------------------------------------------------------------
# frames by hand

def frame_ping(opaque: bytes = b"\0" * 8, ack: bool = False) -> bytes:
    f = PingFrame(0)
    f.opaque_data = opaque
    if ack:
        f.flags.add("ACK")
    return f.serialize()


def frame_settings(settings: dict | None = None, ack: bool = False) -> bytes:
    f = SettingsFrame(0)
    if ack:
        f.flags.add("ACK")
    else:
        f.settings = dict(settings or {})
    return f.serialize()


def frame_empty_data(stream_id: int) -> bytes:
    return DataFrame(stream_id, b"").serialize()


def frame_rst(stream_id: int, code: int = CANCEL) -> bytes:
    f = RstStreamFrame(stream_id)
    f.error_code = code
    return f.serialize()


def frame_window_update(stream_id: int, increment: int) -> bytes:
    f = WindowUpdateFrame(stream_id)
    f.window_increment = increment
    return f.serialize()


def scan_frames(buf: bytes):
    """Split bytes into complete frames: (list of (type, flags, stream_id, payload), rest)."""
    out = []
    i = 0
    while len(buf) - i >= 9:
        length = int.from_bytes(buf[i:i + 3], "big")
        if len(buf) - i < 9 + length:
            break
        ftype, flags = buf[i + 3], buf[i + 4]
        sid = int.from_bytes(buf[i + 5:i + 9], "big") & 0x7FFFFFFF
        out.append((ftype, flags, sid, bytes(buf[i + 9:i + 9 + length])))
        i += 9 + length
    return out, bytes(buf[i:])


def goaway_fields(payload: bytes) -> tuple[int, int]:
    """(last_stream_id, error_code) of a GOAWAY payload."""
    last, code = struct.unpack(">II", payload[:8])
    return last & 0x7FFFFFFF, code


# ---------------------------------------------------------------------------
# client

class H2Stream:
    def __init__(self, sid: int):
        self.id = sid
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.informational: list[list[tuple[str, str]]] = []
        self.data = bytearray()
        self.trailers: list[tuple[str, str]] = []
        self.ended = False
        self.reset_code: int | None = None
        self.t_sent = time.monotonic()
        self.t_headers: float | None = None
        self.t_done: float | None = None

    @property
    def done(self) -> bool:
        return self.ended or self.reset_code is not None

    def header(self, name: str) -> str | None:
        name = name.lower()
        vals = [v for k, v in self.headers if k.lower() == name]
        return ", ".join(vals) if vals else None

    def trailer(self, name: str) -> str | None:
        name = name.lower()
        vals = [v for k, v in self.trailers if k.lower() == name]
        return ", ".join(vals) if vals else None

    def json(self):
        return json.loads(bytes(self.data))

    def __repr__(self):
        return (f"<H2Stream {self.id} status={self.status} ended={self.ended} "
                f"reset={err_name(self.reset_code) if self.reset_code is not None else None} "
                f"headers={self.headers} trailers={self.trailers} "
                f"data[{len(self.data)}]={bytes(self.data[:200])!r}>")


class H2Client:
    """h2c (prior knowledge) client. Nothing is read unless pump()/wait*() is called."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0,
                 window: int = 1 << 24, auto_ack: bool = True, rcvbuf: int | None = None,
                 authority: str = "backend.local", flush: bool = True):
        self.authority = authority
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False,
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: min(window, (1 << 31) - 1),
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 1 << 20,
            })
        self.conn.initiate_connection()
        if window > 65535:
            self.conn.increment_flow_control_window(min(window, (1 << 31) - 1) - 65535)
        self.auto_ack = auto_ack
        self.unacked: dict[int, int] = {}
        self.streams: dict[int, H2Stream] = {}
        self.goaways: list[tuple[int, int, float]] = []  # (error code, last stream id, when)
        self.remote_settings: dict[int, int] = {}
        self.remote_settings_frames = 0
        self.settings_acks = 0
        self.ping_acks: list[bytes] = []
        self.closed = False
        self.t_closed: float | None = None
        self.protocol_error: str | None = None
        self.bytes_received = 0
        self.first_bytes = b""   # for diagnostics: what the peer said first
        self._inbuf = b""
        if flush:
            self.flush()

    # -- sending
    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed:
            self.send_raw(data)

    def send_raw(self, data: bytes) -> bool:
        """Bytes on the wire as they are. False (and closed) when the peer is gone."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self._mark_closed()
            return False

    def request_headers(self, path: str = "/", method: str = "GET",
                        authority: str | None = None, extra=()) -> list[tuple[str, str]]:
        return [(":method", method), (":scheme", "http"),
                (":authority", authority or self.authority), (":path", path)] + list(extra)

    def send_headers(self, headers, end_stream: bool = True, flush: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = H2Stream(sid)
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        if flush:
            self.flush()
        return sid

    def request(self, path: str = "/", method: str = "GET", authority: str | None = None,
                headers=(), body: bytes | None = None, trailers=None, end_stream: bool = True,
                flush: bool = True) -> int:
        """Opens a stream; with body/trailers, sends them too (flow-controlled)."""
        hs = self.request_headers(path, method, authority, headers)
        has_more = bool(body) or bool(trailers) or not end_stream
        sid = self.send_headers(hs, end_stream=not has_more, flush=flush)
        if body:
            self.send_body(sid, body, end_stream=end_stream and not trailers)
        if trailers:
            self.conn.send_headers(sid, list(trailers), end_stream=True)
            self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, end_stream: bool = True, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.timeout)
        view = memoryview(body)
        off = 0
        while off < len(view):
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window <= 0:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"stream {sid}: no flow-control window after {off} body bytes")
                self.pump(0.2)
                if self.closed:
                    raise ConnectionError(f"connection closed after {off} body bytes")
                continue
            chunk = view[off:off + window]
            off += len(chunk)
            self.conn.send_data(sid, bytes(chunk), end_stream=end_stream and off >= len(view))
            self.flush()
        if not body and end_stream:
            self.conn.end_stream(sid)
            self.flush()

    def reset(self, sid: int, code: int = CANCEL, flush: bool = True) -> None:
        self.conn.reset_stream(sid, code)
        if flush:
            self.flush()

    def ping(self, opaque: bytes) -> None:
        self.conn.ping(opaque)
        self.flush()

    def ack_data(self) -> None:
        """Acknowledge every received byte (re-opens the windows of a non-auto-ack client)."""
        for sid, n in list(self.unacked.items()):
            if n:
                self.conn.acknowledge_received_data(n, sid)
        self.unacked.clear()
        self.flush()

    # -- receiving
    def _mark_closed(self) -> None:
        if not self.closed:
            self.closed = True
            self.t_closed = time.monotonic()

    def _split_goaways(self, data: bytes) -> bytes:
        """Take GOAWAY frames out (recorded here); the rest is for h2."""
        self._inbuf += data
        out = bytearray()
        i = 0
        buf = self._inbuf
        while len(buf) - i >= 9:
            length = int.from_bytes(buf[i:i + 3], "big")
            if len(buf) - i < 9 + length:
                break
            if buf[i + 3] == FRAME_GOAWAY:
                last, code = goaway_fields(buf[i + 9:i + 9 + length])
                self.goaways.append((code, last, time.monotonic()))
            else:
                out += buf[i:i + 9 + length]
            i += 9 + length
        self._inbuf = buf[i:]
        return bytes(out)

    def feed(self, data: bytes) -> None:
        if len(self.first_bytes) < 200:
            self.first_bytes += data[:200 - len(self.first_bytes)]
        self.bytes_received += len(data)
        data = self._split_goaways(data)
        if not data or self.protocol_error:
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self.protocol_error = f"{type(e).__name__}: {e}"
            return
        now = time.monotonic()
        for ev in events:
            sid = getattr(ev, "stream_id", None)
            st = self.streams.get(sid) if sid else None
            if isinstance(ev, h2.events.ResponseReceived):
                if st:
                    st.headers = list(ev.headers)
                    st.status = int(dict(ev.headers).get(":status", 0))
                    st.t_headers = now
            elif isinstance(ev, h2.events.InformationalResponseReceived):
                if st:
                    st.informational.append(list(ev.headers))
            elif isinstance(ev, h2.events.DataReceived):
                if st:
                    st.data += ev.data
                if ev.flow_controlled_length:
                    if self.auto_ack:
                        self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    else:
                        self.unacked[ev.stream_id] = self.unacked.get(ev.stream_id, 0) + ev.flow_controlled_length
            elif isinstance(ev, h2.events.TrailersReceived):
                if st:
                    st.trailers = list(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                if st:
                    st.ended = True
                    st.t_done = now
            elif isinstance(ev, h2.events.StreamReset):
                if st and not st.ended:
                    st.reset_code = int(ev.error_code)
                    st.t_done = now
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                self.remote_settings_frames += 1
                for code, ch in ev.changed_settings.items():
                    self.remote_settings[int(code)] = ch.new_value
            elif isinstance(ev, h2.events.SettingsAcknowledged):
                self.settings_acks += 1
            elif isinstance(ev, h2.events.PingAckReceived):
                self.ping_acks.append(ev.ping_data)

    def pump(self, timeout: float) -> bool:
        """Send what is pending, read once (up to timeout). True if something happened."""
        self.flush()
        if self.closed:
            return False
        try:
            r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        except (OSError, ValueError):
            self._mark_closed()
            return True
        if not r:
            return False
        try:
            data = self.sock.recv(1 << 18)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except socket.timeout:
            return False
        if not data:
            self._mark_closed()
            return True
        self.feed(data)
        self.flush()
        return True

    def wait(self, pred, timeout: float | None = None) -> bool:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed or self.protocol_error:
                return pred()
            self.pump(min(left, 0.5))
        return True

    def wait_stream(self, sid: int, timeout: float | None = None) -> H2Stream:
        self.wait(lambda: self.streams[sid].done, timeout)
        return self.streams[sid]

    def wait_closed(self, timeout: float) -> bool:
        return self.wait(lambda: self.closed, timeout)

    def get(self, path: str = "/", authority: str | None = None, headers=(),
            timeout: float | None = None) -> H2Stream:
        return self.wait_stream(self.request(path, authority=authority, headers=headers), timeout)

    def describe(self) -> str:
        return (f"closed={self.closed} goaways={[(err_name(c), last) for c, last, _ in self.goaways]} "
                f"protocol_error={self.protocol_error} remote_settings={self.remote_settings} "
                f"received={self.bytes_received}B"
                + ("" if self.remote_settings_frames or not self.first_bytes
                   else f" (no SETTINGS ever; the peer sent {self.first_bytes[:120]!r}: not HTTP/2?)"))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# server

class H2Request:
    def __init__(self, conn_no: int, sid: int, headers: list[tuple[str, str]]):
        self.conn_no = conn_no
        self.stream_id = sid
        self.headers = headers
        self.body_bytes = 0
        self._sha = hashlib.sha256()
        self.sha256 = ""
        self.trailers: list[tuple[str, str]] = []
        self.ended = False
        self.reset_code: int | None = None
        self.t_start = time.monotonic()

    def header(self, name: str) -> str | None:
        name = name.lower()
        vals = [v for k, v in self.headers if k.lower() == name]
        return ", ".join(vals) if vals else None

    @property
    def path(self) -> str:
        return self.header(":path") or ""

    @property
    def method(self) -> str:
        return self.header(":method") or ""

    def summary(self, name: str) -> dict:
        regular: dict[str, str] = {}
        pseudo: dict[str, str] = {}
        for k, v in self.headers:
            d = pseudo if k.startswith(":") else regular
            d[k] = f"{d[k]}, {v}" if k in d else v
        return {"name": name, "method": self.method, "path": self.path, "protocol": "HTTP/2",
                "headers": regular, "pseudo": pseudo,
                "trailers": {k: v for k, v in self.trailers},
                "bodyBytes": self.body_bytes, "sha256": self.sha256}

    def __repr__(self):
        return (f"<H2Request conn={self.conn_no} stream={self.stream_id} headers={self.headers} "
                f"body={self.body_bytes} trailers={self.trailers} ended={self.ended} "
                f"reset={self.reset_code}>")


class H2Backend:
    """Threaded h2c server that records requests and answers like `remora echo`."""

    def __init__(self, name: str = "h2backend", host: str = "127.0.0.1", port: int = 0,
                 max_concurrent_streams: int | None = None):
        self.name = name
        self.max_concurrent_streams = max_concurrent_streams
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]
        self.requests: list[H2Request] = []   # complete requests
        self.started: list[H2Request] = []    # every request head received
        self.errors: list[str] = []
        self.connections_accepted = 0
        self._conns: list[socket.socket] = []
        self._cv = threading.Condition()
        self._stop = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    # -- bookkeeping
    @property
    def requests_started(self) -> int:
        with self._cv:
            return len(self.started)

    def wait_for(self, n: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
            return True

    def reset(self) -> None:
        with self._cv:
            self.requests.clear()
            self.started.clear()

    def stop(self) -> None:
        self._stop = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self._cv:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    # -- serving
    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self._cv:
                self._conns.append(s)
                self.connections_accepted += 1
                no = self.connections_accepted
            threading.Thread(target=self._serve_wrapper, args=(s, no), daemon=True).start()

    def _serve_wrapper(self, s: socket.socket, no: int) -> None:
        try:
            self._serve(s, no)
        except (OSError, h2.exceptions.H2Error) as e:
            if not self._stop:
                with self._cv:
                    self.errors.append(f"conn {no}: {type(e).__name__}: {e}")
        finally:
            try:
                s.close()
            except OSError:
                pass

    def _response_for(self, req: H2Request):
        """(status, headers, body, trailers, delay seconds)"""
        path = req.path.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        status, delay, trailers = 200, 0.0, None
        body = None
        ctype = "application/json"
        try:
            if len(parts) == 2 and parts[0] == "status":
                status = int(parts[1])
            elif len(parts) == 2 and parts[0] == "delay":
                delay = int(parts[1]) / 1000.0
            elif len(parts) == 2 and parts[0] == "bytes":
                body = (b"0123456789abcdef" * (int(parts[1]) // 16 + 1))[:int(parts[1])]
                ctype = "application/octet-stream"
            elif len(parts) == 2 and parts[0] == "trailers":
                n = int(parts[1])
                body = (b"trailer-body-0123456789\n" * (n // 24 + 1))[:n]
                ctype = "text/plain"
                trailers = [("x-checksum", hashlib.sha256(body).hexdigest()),
                            ("x-trailer-two", "end")]
        except ValueError:
            status = 400
        if body is None:
            body = json.dumps(req.summary(self.name)).encode()
        headers = [(":status", str(status)), ("x-echo-name", self.name), ("content-type", ctype)]
        if trailers is None:
            headers.append(("content-length", str(len(body))))
        return status, headers, body, trailers, delay

    def _serve(self, s: socket.socket, no: int) -> None:
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        conn = h2.connection.H2Connection(config=cfg)
        init = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20}
        if self.max_concurrent_streams:
            init[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = self.max_concurrent_streams
        conn.local_settings = h2.settings.Settings(client=False, initial_values=init)
        conn.initiate_connection()
        conn.increment_flow_control_window((1 << 24) - 65535)
        s.sendall(conn.data_to_send())
        live: dict[int, H2Request] = {}
        pending: dict[int, list] = {}   # sid -> [body, offset, trailers]
        timers: list[tuple[float, int]] = []

        def start_response(sid: int) -> None:
            req = live.get(sid)
            if req is None or req.reset_code is not None:
                return
            status, headers, body, trailers, _ = self._response_for(req)
            end = not body and not trailers
            conn.send_headers(sid, headers, end_stream=end)
            if not end:
                pending[sid] = [body, 0, trailers]

        def flush_pending() -> None:
            for sid, p in list(pending.items()):
                body, off, trailers = p
                try:
                    while off < len(body):
                        w = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size,
                                len(body) - off)
                        if w <= 0:
                            break
                        conn.send_data(sid, body[off:off + w],
                                       end_stream=(off + w >= len(body) and not trailers))
                        off += w
                    p[1] = off
                    if off >= len(body):
                        if trailers:
                            conn.send_headers(sid, trailers, end_stream=True)
                        elif not body:
                            conn.end_stream(sid)
                        del pending[sid]
                except (h2.exceptions.StreamClosedError, KeyError):
                    pending.pop(sid, None)

        while not self._stop:
            now = time.monotonic()
            timeout = None
            if timers:
                timeout = max(0.0, min(t for t, _ in timers) - now)
            r, _, _ = select.select([s], [], [], timeout)
            if r:
                data = s.recv(1 << 18)
                if not data:
                    return
                events = conn.receive_data(data)
                for ev in events:
                    if isinstance(ev, h2.events.RequestReceived):
                        req = H2Request(no, ev.stream_id, list(ev.headers))
                        live[ev.stream_id] = req
                        with self._cv:
                            self.started.append(req)
                        if ev.stream_ended is not None:
                            self._finish(req)
                    elif isinstance(ev, h2.events.DataReceived):
                        req = live.get(ev.stream_id)
                        if req is not None:
                            req.body_bytes += len(ev.data)
                            req._sha.update(ev.data)
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.TrailersReceived):
                        req = live.get(ev.stream_id)
                        if req is not None:
                            req.trailers = list(ev.headers)
                    elif isinstance(ev, h2.events.StreamEnded):
                        req = live.get(ev.stream_id)
                        if req is not None and not req.ended:
                            self._finish(req)
                    elif isinstance(ev, h2.events.StreamReset):
                        req = live.get(ev.stream_id)
                        if req is not None:
                            req.reset_code = int(ev.error_code)
                        pending.pop(ev.stream_id, None)
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        s.sendall(conn.data_to_send())
                        return
                for ev in events:
                    if isinstance(ev, (h2.events.StreamEnded, h2.events.RequestReceived)):
                        req = live.get(ev.stream_id)
                        if req is not None and req.ended and not getattr(req, "_answered", False):
                            req._answered = True
                            delay = self._response_for(req)[4]
                            if delay > 0:
                                timers.append((time.monotonic() + delay, ev.stream_id))
                            else:
                                start_response(ev.stream_id)
            now = time.monotonic()
            for t, sid in [x for x in timers if x[0] <= now]:
                timers.remove((t, sid))
                start_response(sid)
            flush_pending()
            out = conn.data_to_send()
            if out:
                s.sendall(out)

    def _finish(self, req: H2Request) -> None:
        req.ended = True
        req.sha256 = req._sha.hexdigest()
        with self._cv:
            self.requests.append(req)
            self._cv.notify_all()


# ---------------------------------------------------------------------------
# HTTP/1.1 with trailers

def read_h1_response_with_trailers(c: "harness.RawConn"):
    """(Response, trailers) of one response; trailers are [(name, value)] of a chunked body."""
    head = c.read_until(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].decode("latin-1").split(" ", 2)
    status = int(parts[1])
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.decode("latin-1").partition(":")
        headers.append((k.strip(), v.strip()))
    r = harness.Response(status, parts[2] if len(parts) > 2 else "", headers, b"", head)
    trailers: list[tuple[str, str]] = []
    te = (r.header("transfer-encoding") or "").lower()
    cl = r.header("content-length")
    if "chunked" in te:
        body = bytearray()
        while True:
            size = int(c.read_until(b"\r\n").split(b";")[0].strip(), 16)
            if size == 0:
                while True:
                    ln = c.read_until(b"\r\n")
                    if ln == b"\r\n":
                        break
                    k, _, v = ln[:-2].decode("latin-1").partition(":")
                    trailers.append((k.strip().lower(), v.strip()))
                break
            body += c.read_exact(size)
            assert c.read_exact(2) == b"\r\n", "chunk not followed by CRLF"
        r.body = bytes(body)
    elif cl is not None:
        r.body = c.read_exact(int(cl))
    else:
        while c._fill():
            pass
        r.body, c.buf = c.buf, b""
    return r, trailers


# ---------------------------------------------------------------------------
# h2load

def parse_h2load(out: str) -> dict:
    import re
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    if not m:
        raise AssertionError(f"cannot parse h2load output:\n{out}")
    res = dict(zip(("total", "started", "done", "succeeded", "failed", "errored", "timeout"),
                   map(int, m.groups())))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not m:
        raise AssertionError(f"no status codes line in h2load output:\n{out}")
    res.update(zip(("2xx", "3xx", "4xx", "5xx"), map(int, m.groups())))
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    res["rps"] = float(m.group(3)) if m else 0.0
    m = re.search(r"Application protocol: (\S+)", out)
    res["protocol"] = m.group(1) if m else ""
    return res


# ---------------------------------------------------------------------------
# configuration

def h2_service_entry(name: str, host: str, ports: list[int], protocol: str = "HTTP") -> dict:
    """harness.service_entry with the port's protocol set (HTTP, HTTP2, GRPC)."""
    se = harness.service_entry(name, host, ports)
    se["spec"]["ports"][0]["protocol"] = protocol
    return se


def h2_upgrade_rule(name: str, host: str, policy: str = "UPGRADE", ns: str = "default") -> dict:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"host": host,
                 "trafficPolicy": {"connectionPool": {"http": {"h2UpgradePolicy": policy}}}},
    }


def start_proxy(env, services: dict, limits: dict | None = None, extra: list[dict] = (),
                name: str = "remora"):
    """services: {host: (port, protocol)}; each host routed to itself by its own
    VirtualService. limits: Proxy spec.limits. extra: more resources (DestinationRules)."""
    resources = []
    for i, (host, (port, proto)) in enumerate(services.items()):
        resources.append(h2_service_entry(f"svc{i}", host, [port], proto))
        resources.append(harness.virtual_service(f"vs{i}", [host], host))
    resources += list(extra)
    if limits is None:
        return env.run_with(resources, name=name)
    ports = {k: harness.free_port() for k in ("listen", "admin", "health", "metrics")}
    docs = [harness.proxy_resource(ports["listen"], ports["admin"], ports["health"],
                                   ports["metrics"], extra={"limits": dict(limits)})]
    cfg = env.write(docs + resources, f"{name}-{ports['listen']}.yaml")
    return env.run_proxy([cfg], ports, name)


# ---------------------------------------------------------------------------
# self test (no Remora needed)

def _selftest() -> None:
    b = H2Backend(name="self")
    try:
        with H2Client(b.port, authority="x.local") as c:
            s = c.get("/hello?q=1", headers=[("x-a", "1")])
            assert s.status == 200 and s.header("x-echo-name") == "self", s
            d = s.json()
            assert d["protocol"] == "HTTP/2" and d["headers"]["x-a"] == "1", d
            assert d["pseudo"][":authority"] == "x.local", d
            # body, flow control both ways, trailers both ways
            body = os.urandom(3 << 20)
            sid = c.request("/up", "POST", body=body, trailers=[("x-req-trailer", "t1")])
            s = c.wait_stream(sid)
            d = s.json()
            assert d["bodyBytes"] == len(body) and d["sha256"] == hashlib.sha256(body).hexdigest(), d
            assert d["trailers"] == {"x-req-trailer": "t1"}, d
            s = c.get("/bytes/3000000")
            assert s.status == 200 and len(s.data) == 3000000, s
            s = c.get("/trailers/100000")
            assert len(s.data) == 100000 and s.trailer("x-checksum") == hashlib.sha256(s.data).hexdigest(), s
            t0 = time.monotonic()
            s = c.get("/delay/300")
            assert s.status == 200 and time.monotonic() - t0 >= 0.29, s
            s = c.get("/status/418")
            assert s.status == 418, s
            # a reset stream
            sid = c.request("/delay/2000")
            c.reset(sid)
            s = c.get("/after-reset")
            assert s.status == 200, s
            # a stream refused by max concurrent streams is the server's job: not here
            c.ping(b"12345678")
            assert c.wait(lambda: c.ping_acks, 3)
        assert b.wait_for(7), b.requests
        assert not b.errors, b.errors
        # GOAWAY split out and frames after it still processed
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        port = ls.getsockname()[1]
        c = H2Client(port)
        srv, _ = ls.accept()
        sconn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        sconn.initiate_connection()
        sid = c.request("/x")
        srv.settimeout(5)
        evs = []
        while not any(isinstance(e, h2.events.RequestReceived) for e in evs):
            evs += sconn.receive_data(srv.recv(65536))
        sconn.send_headers(1, [(":status", "200")])
        srv.sendall(sconn.data_to_send())
        srv.sendall(struct.pack(">I", 8)[1:] + bytes([FRAME_GOAWAY, 0]) + b"\0\0\0\0"
                    + struct.pack(">II", 1, 0))
        sconn.send_data(1, b"after-goaway", end_stream=True)
        srv.sendall(sconn.data_to_send())
        s = c.wait_stream(sid, 3)
        assert s.ended and bytes(s.data) == b"after-goaway", (s, c.describe())
        assert c.goaways and c.goaways[0][:2] == (0, 1), c.goaways
        c.close()
        srv.close()
        ls.close()
    finally:
        b.stop()
    frames, rest = scan_frames(frame_ping(b"abcdefgh") + frame_settings({3: 5}) + b"\0\0")
    assert [f[0] for f in frames] == [FRAME_PING, FRAME_SETTINGS] and rest == b"\0\0", frames
    sample = """finished in 5.00s, 20000.00 req/s, 2.00MB/s
requests: 100000 total, 100000 started, 100000 done, 99990 succeeded, 10 failed, 10 errored, 0 timeout
status codes: 99990 2xx, 0 3xx, 0 4xx, 0 5xx
"""
    r = parse_h2load(sample)
    assert r["total"] == 100000 and r["succeeded"] == 99990 and r["failed"] == 10 and r["2xx"] == 99990
    assert r["rps"] == 20000.0
    print("h2_peers selftest: ok")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "selftest":
        _selftest()
    else:
        print(__doc__)
        sys.exit(2)
