"""gRPC peers for Remora's end-to-end tests: a grpcio server (its own process), grpcio
client helpers, a raw HTTP/2 client (h2) and a raw HTTP/1.1 gRPC client.

No protoc: the server uses generic handlers with identity (de)serializers, so every
message is plain bytes (JSON where a method takes parameters).

Server, as a separate process (so a ProcManager kills it):
    python3 grpc_peers.py serve --name NAME [--port PORT]
        prints "READY <port>" on stdout, then serves service `test.Echo` until killed:
  Unary         reply JSON {name, userid, len, sha256, metadata}: the server's name, the
                `userid` metadata it received, the request's length and sha256, and all
                request metadata (`-bin` values base64). Sends initial metadata
                (x-server-name: NAME, x-initial: i-NAME) and trailing metadata
                (x-trailer: t-NAME, x-trailer-bin: 00 01 02 fe ff).
  Fail          aborts with UNAVAILABLE (or request JSON {"code": NAME}) and the message
                "backend NAME unavailable: try later" (or {"message": ...}), trailing
                metadata x-fail-reason: maintenance. grpc core sends it as a
                trailers-only response (one HEADERS frame with END_STREAM).
  ServerStream  request JSON {n, size, delay_ms}: n messages of `size` bytes (>= 4), the
                first 4 bytes the big-endian sequence number, the rest payload(size)[4:];
                trailing metadata x-sent: n.
  ClientStream  reply JSON {count, bytes, sha256} of the messages received.
  Bidi          echoes each message as soon as it arrives.
  Sleep         request JSON {ms, tag}: sleeps ms (ending early when the call is
                cancelled or its deadline passes), then replies JSON {slept_ms}. Each call
                is recorded (tag, ms, deadline the server saw, outcome, elapsed_ms).
  Big           request JSON {size}: replies payload(size) (up to 16 MiB).
  FlakyOnce     request JSON {key}: the first call for a key aborts with UNAVAILABLE
                (trailers-only, message "flaky KEY: first call fails"), every later call
                for that key replies JSON {name, key, calls}. Calls per key are counted.
  Events        reply JSON {calls: {method: count}, sleeps: [records], flaky: {key: calls}}
                (ask the backend directly, not through the proxy).
  Messages up to 16 MiB both ways (grpc.max_send/receive_message_length).

`python3 grpc_peers.py selftest` runs every client scenario directly against the server
(grpcio client -> grpcio server, no Remora), plus the raw h2 and HTTP/1.1 clients.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

SERVICE = "test.Echo"
MAX_MSG = 16 * 1024 * 1024
MSG_OPTIONS = [("grpc.max_send_message_length", MAX_MSG),
               ("grpc.max_receive_message_length", MAX_MSG)]
FAIL_MESSAGE = "backend {name} unavailable: try later"
TRAILER_BIN = b"\x00\x01\x02\xfe\xff"
_BLOCK = bytes(range(256))


def payload(size: int) -> bytes:
    """size bytes of a fixed pattern (0,1,...,255,0,1,...)."""
    return (_BLOCK * (size // 256 + 1))[:size]


def seq_message(i: int, size: int, base: bytes | None = None) -> bytes:
    base = base if base is not None else payload(size)
    return i.to_bytes(4, "big") + base[4:size]


# ---------------------------------------------------------------------------
# server

class EchoService:
    def __init__(self, name: str):
        import grpc
        self.grpc = grpc
        self.name = name
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.sleeps: list[dict] = []
        self.flaky: dict[str, int] = {}

    def _count(self, method: str) -> None:
        with self.lock:
            self.calls[method] = self.calls.get(method, 0) + 1

    @staticmethod
    def _json(request: bytes) -> dict:
        if not request:
            return {}
        try:
            return json.loads(request)
        except ValueError:
            return {}

    def unary(self, request: bytes, context) -> bytes:
        self._count("Unary")
        md = {}
        for k, v in context.invocation_metadata():
            md[k] = base64.b64encode(v).decode() if isinstance(v, bytes) else v
        context.send_initial_metadata((("x-server-name", self.name), ("x-initial", f"i-{self.name}")))
        context.set_trailing_metadata((("x-trailer", f"t-{self.name}"), ("x-trailer-bin", TRAILER_BIN)))
        return json.dumps({"name": self.name, "userid": md.get("userid"), "len": len(request),
                           "sha256": hashlib.sha256(request).hexdigest(), "metadata": md}).encode()

    def fail(self, request: bytes, context) -> bytes:
        self._count("Fail")
        req = self._json(request)
        code = getattr(self.grpc.StatusCode, req.get("code", "UNAVAILABLE"))
        context.set_trailing_metadata((("x-fail-reason", "maintenance"),))
        context.abort(code, req.get("message", FAIL_MESSAGE.format(name=self.name)))

    def server_stream(self, request: bytes, context):
        self._count("ServerStream")
        req = self._json(request)
        n, size, delay = int(req.get("n", 10)), max(4, int(req.get("size", 16))), req.get("delay_ms", 0)
        base = payload(size)
        context.set_trailing_metadata((("x-sent", str(n)),))
        for i in range(n):
            if not context.is_active():
                return
            yield seq_message(i, size, base)
            if delay:
                time.sleep(delay / 1000)

    def client_stream(self, request_iterator, context) -> bytes:
        self._count("ClientStream")
        count, total, sha = 0, 0, hashlib.sha256()
        for m in request_iterator:
            count += 1
            total += len(m)
            sha.update(m)
        return json.dumps({"name": self.name, "count": count, "bytes": total,
                           "sha256": sha.hexdigest()}).encode()

    def bidi(self, request_iterator, context):
        self._count("Bidi")
        for m in request_iterator:
            yield m

    def sleep(self, request: bytes, context) -> bytes:
        self._count("Sleep")
        req = self._json(request)
        ms = int(req.get("ms", 1000))
        rem = context.time_remaining()
        rec = {"tag": req.get("tag", ""), "ms": ms,
               "deadline_s": rem if rem is not None and rem < 1e6 else None,
               "outcome": None, "elapsed_ms": None}
        with self.lock:
            self.sleeps.append(rec)
        t0 = time.monotonic()
        outcome = "completed"
        while (time.monotonic() - t0) * 1000 < ms:
            if not context.is_active():
                outcome = "cancelled"
                break
            time.sleep(0.01)
        with self.lock:
            rec["elapsed_ms"] = round((time.monotonic() - t0) * 1000)
            rec["outcome"] = outcome
        return json.dumps({"name": self.name, "slept_ms": rec["elapsed_ms"]}).encode()

    def flaky_once(self, request: bytes, context) -> bytes:
        self._count("FlakyOnce")
        key = str(self._json(request).get("key", ""))
        with self.lock:
            n = self.flaky[key] = self.flaky.get(key, 0) + 1
        if n == 1:
            context.abort(self.grpc.StatusCode.UNAVAILABLE, f"flaky {key}: first call fails")
        return json.dumps({"name": self.name, "key": key, "calls": n}).encode()

    def big(self, request: bytes, context) -> bytes:
        self._count("Big")
        size = min(int(self._json(request).get("size", 0)), MAX_MSG - 64)
        return payload(size)

    def events(self, request: bytes, context) -> bytes:
        with self.lock:
            return json.dumps({"name": self.name, "calls": dict(self.calls),
                               "sleeps": [dict(s) for s in self.sleeps],
                               "flaky": dict(self.flaky)}).encode()

    def handler(self):
        g = self.grpc
        return g.method_handlers_generic_handler(SERVICE, {
            "Unary": g.unary_unary_rpc_method_handler(self.unary),
            "Fail": g.unary_unary_rpc_method_handler(self.fail),
            "ServerStream": g.unary_stream_rpc_method_handler(self.server_stream),
            "ClientStream": g.stream_unary_rpc_method_handler(self.client_stream),
            "Bidi": g.stream_stream_rpc_method_handler(self.bidi),
            "Sleep": g.unary_unary_rpc_method_handler(self.sleep),
            "Big": g.unary_unary_rpc_method_handler(self.big),
            "FlakyOnce": g.unary_unary_rpc_method_handler(self.flaky_once),
            "Events": g.unary_unary_rpc_method_handler(self.events),
        })


def serve_main(name: str, port: int = 0) -> None:
    import grpc
    from concurrent import futures
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64),
                         options=MSG_OPTIONS + [("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((EchoService(name).handler(),))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    if not bound:
        print(f"cannot bind 127.0.0.1:{port}", file=sys.stderr, flush=True)
        sys.exit(3)
    server.start()
    print(f"READY {bound}", flush=True)
    server.wait_for_termination()


class GrpcBackend:
    def __init__(self, proc, port: int, name: str):
        self.proc, self.port, self.name = proc, port, name


def start_backends(pm, names: list[str], timeout: float = 30) -> dict[str, GrpcBackend]:
    """Starts one server process per name through the ProcManager `pm` (all at once, then
    waits for each READY line)."""
    procs = {n: pm.start(f"grpc-{n}", [sys.executable, str(HERE / "grpc_peers.py"), "serve",
                                       "--name", n], stdout_pipe=True) for n in names}
    out = {}
    for n, p in procs.items():
        line = p.read_line(timeout)
        if not line or not line.startswith("READY "):
            raise RuntimeError(f"grpc backend {n} did not start: {line!r}\n{p.describe()}")
        out[n] = GrpcBackend(p, int(line.split()[1]), n)
    return out


# ---------------------------------------------------------------------------
# grpcio client helpers

def channel(port: int, authority: str | None = None, options=()):
    """Plaintext h2c (prior knowledge) channel to 127.0.0.1:port; :authority = authority."""
    import grpc
    opts = list(MSG_OPTIONS) + [("grpc.enable_http_proxy", 0), ("grpc.enable_retries", 0)]
    if authority:
        opts.append(("grpc.default_authority", authority))
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=opts + list(options))


def _m(method: str) -> str:
    return f"/{SERVICE}/{method}"


def unary(ch, method: str, body: bytes = b"", metadata=(), timeout: float = 10):
    """(reply bytes, call); raises grpc.RpcError (also a Call) on a non-OK status."""
    return ch.unary_unary(_m(method)).with_call(body, metadata=list(metadata), timeout=timeout)


def rpc_error(fn):
    """Runs fn(), which must raise grpc.RpcError; returns the error (code(), details(),
    trailing_metadata())."""
    import grpc
    try:
        r = fn()
    except grpc.RpcError as e:
        return e
    raise AssertionError(f"expected an RPC error, got a reply: {str(r)[:300]}")


def md_dict(md) -> dict:
    return {k: v for k, v in (md or ())}


def events(backend_port: int) -> dict:
    """The backend's call counters and Sleep records (asked directly, no proxy)."""
    with channel(backend_port) as ch:
        reply, _ = unary(ch, "Events", b"", timeout=5)
    return json.loads(reply)


def wait_sleep_outcome(backend_port: int, tag: str, timeout: float) -> dict | None:
    """The backend's record of the Sleep call tagged `tag` once it has an outcome (or the
    last record seen, or None if the call never arrived) within timeout."""
    deadline = time.monotonic() + timeout
    rec = None
    while True:
        recs = [s for s in events(backend_port)["sleeps"] if s["tag"] == tag]
        rec = recs[-1] if recs else None
        if (rec and rec["outcome"]) or time.monotonic() > deadline:
            return rec
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# scenarios: what a client must see. Each runs against `port` (a backend directly, or
# the proxy with `authority`) and asserts; the selftest runs them with no proxy.

def served_by(port: int, authority: str | None, userid: str | None = None) -> str:
    md = [("userid", userid)] if userid is not None else []
    with channel(port, authority) as ch:
        reply, call = unary(ch, "Unary", b"who", md)
    doc = json.loads(reply)
    assert doc["userid"] == userid, f"backend saw userid {doc['userid']!r}, sent {userid!r}"
    assert md_dict(call.initial_metadata()).get("x-server-name") == doc["name"], call.initial_metadata()
    return doc["name"]


def check_unary(port: int, authority: str | None, name: str) -> None:
    """Unary call: reply from `name`; request metadata (text and -bin) reach the backend;
    the backend's initial and trailing metadata (text and -bin) and status OK reach the
    client untouched; 20 concurrent calls on one channel all succeed."""
    import grpc
    body = b"hello over grpc"
    md = [("userid", "bob"), ("x-client-md", "c1"), ("x-client-bin", b"\xff\x00\x10")]
    with channel(port, authority) as ch:
        reply, call = unary(ch, "Unary", body, md)
        doc = json.loads(reply)
        assert doc["name"] == name, doc
        assert doc["userid"] == "bob", doc
        assert doc["len"] == len(body) and doc["sha256"] == hashlib.sha256(body).hexdigest(), doc
        assert doc["metadata"].get("x-client-md") == "c1", doc["metadata"]
        assert base64.b64decode(doc["metadata"].get("x-client-bin", "")) == b"\xff\x00\x10", doc["metadata"]
        assert call.code() == grpc.StatusCode.OK, call.code()
        init, trail = md_dict(call.initial_metadata()), md_dict(call.trailing_metadata())
        assert init.get("x-server-name") == name and init.get("x-initial") == f"i-{name}", init
        assert trail.get("x-trailer") == f"t-{name}", trail
        assert trail.get("x-trailer-bin") == TRAILER_BIN, trail
        # a second call on the same channel, then 20 concurrent ones (streams multiplexed)
        assert json.loads(unary(ch, "Unary", b"again")[0])["len"] == 5
        stub = ch.unary_unary(_m("Unary"))
        futs = [stub.future(b"x" * i, metadata=[("userid", f"u{i}")], timeout=10) for i in range(20)]
        for i, f in enumerate(futs):
            d = json.loads(f.result())
            assert (d["len"], d["userid"], d["name"]) == (i, f"u{i}", name), d


def check_fail(port: int, authority: str | None, name: str) -> None:
    """UNAVAILABLE from the backend reaches the client with its message and trailing
    metadata untouched."""
    import grpc
    with channel(port, authority) as ch:
        e = rpc_error(lambda: unary(ch, "Fail", b""))
        assert e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())
        assert e.details() == FAIL_MESSAGE.format(name=name), e.details()
        assert md_dict(e.trailing_metadata()).get("x-fail-reason") == "maintenance", e.trailing_metadata()
        # another status code, another message: passed through as they are
        e = rpc_error(lambda: unary(ch, "Fail", json.dumps(
            {"code": "PERMISSION_DENIED", "message": "nope: 100% (caf\u00e9)"}).encode()))
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (e.code(), e.details())
        assert e.details() == "nope: 100% (caf\u00e9)", e.details()


def check_server_stream(port: int, authority: str | None, n: int = 100, size: int = 1000) -> None:
    """n messages arrive complete and in order, then status OK and trailing metadata."""
    import grpc
    with channel(port, authority) as ch:
        call = ch.unary_stream(_m("ServerStream"))(json.dumps({"n": n, "size": size}).encode(), timeout=10)
        base = payload(size)
        got = 0
        for m in call:
            assert m == seq_message(got, size, base), f"message {got}: {m[:8]!r}... ({len(m)} bytes)"
            got += 1
        assert got == n, f"{got} of {n} messages"
        assert call.code() == grpc.StatusCode.OK, call.code()
        assert md_dict(call.trailing_metadata()).get("x-sent") == str(n), call.trailing_metadata()


def check_server_stream_unbuffered(port: int, authority: str | None) -> list[float]:
    """5 messages sent 300 ms apart arrive as they are sent (not all at the end)."""
    with channel(port, authority) as ch:
        t0 = time.monotonic()
        call = ch.unary_stream(_m("ServerStream"))(
            json.dumps({"n": 5, "size": 64, "delay_ms": 300}).encode(), timeout=10)
        times = [time.monotonic() - t0 for _ in call]
    assert len(times) == 5, times
    assert times[0] < 1.0, f"first message after {times[0]:.2f}s: {times}"
    assert times[-1] - times[0] > 0.8, f"messages arrived together (buffered?): {times}"
    return times


def check_client_stream(port: int, authority: str | None, name: str) -> None:
    """60 messages of varied sizes (0..~64 KiB) counted and hashed at the backend."""
    import random
    rnd = random.Random(7)
    msgs = [os.urandom(rnd.choice([0, 1, 100, 5000, 65536])) for _ in range(60)]
    with channel(port, authority) as ch:
        reply, call = ch.stream_unary(_m("ClientStream")).with_call(iter(msgs), timeout=10)
    doc = json.loads(reply)
    sha = hashlib.sha256(b"".join(msgs)).hexdigest()
    assert doc == {"name": name, "count": 60, "bytes": sum(map(len, msgs)), "sha256": sha}, doc


def check_bidi_interleaved(port: int, authority: str | None, rounds: int = 20) -> None:
    """Send one message, wait for its echo, send the next: each echo must arrive while the
    request stream is still open (nothing waits for the whole stream)."""
    import queue
    import grpc
    outq: queue.Queue = queue.Queue()
    inq: queue.Queue = queue.Queue()
    done = object()

    def requests():
        while True:
            m = outq.get()
            if m is done:
                return
            yield m

    with channel(port, authority) as ch:
        call = ch.stream_stream(_m("Bidi"))(requests(), timeout=20)

        def reader():
            try:
                for m in call:
                    inq.put(m)
                inq.put(done)
            except grpc.RpcError as e:
                inq.put(e)

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        try:
            for i in range(rounds):
                msg = f"ping {i} ".encode() + os.urandom(i * 100)
                outq.put(msg)
                try:
                    got = inq.get(timeout=5)
                except queue.Empty:
                    raise AssertionError(f"no echo of message {i} within 5 s while the request "
                                         f"stream is open (stream buffered?)")
                assert not isinstance(got, grpc.RpcError), f"message {i}: {got.code()} {got.details()}"
                assert got == msg, f"message {i}: echo {got[:20]!r} != {msg[:20]!r}"
            outq.put(done)
            end = inq.get(timeout=5)
            assert end is done, f"after half-close: {end!r}"
            assert call.code() == grpc.StatusCode.OK, call.code()
        finally:
            outq.put(done)
            call.cancel()
            th.join(5)


def check_big(port: int, authority: str | None, size: int = 3_000_000) -> None:
    """A `size`-byte request (checked by sha256 at the backend) and response (byte-exact)."""
    body = os.urandom(size)
    with channel(port, authority) as ch:
        reply, _ = unary(ch, "Unary", body, timeout=10)
        doc = json.loads(reply)
        assert doc["len"] == size and doc["sha256"] == hashlib.sha256(body).hexdigest(), doc
        reply, _ = unary(ch, "Big", json.dumps({"size": size}).encode(), timeout=10)
        assert len(reply) == size, len(reply)
        assert reply == payload(size), "response bytes differ"


def check_slow_consumer(port: int, authority: str | None, n: int = 200, size: int = 1 << 20,
                        interval: float = 0.01) -> float:
    """The backend streams n messages of `size` bytes; the client reads one every
    `interval` s. All arrive intact and in order. Returns the elapsed time."""
    import grpc
    base = payload(size)
    with channel(port, authority) as ch:
        t0 = time.monotonic()
        call = ch.unary_stream(_m("ServerStream"))(json.dumps({"n": n, "size": size}).encode(), timeout=20)
        got = 0
        for m in call:
            if len(m) != size or m[:4] != got.to_bytes(4, "big") or m[4:] != base[4:]:
                raise AssertionError(f"message {got}: {len(m)} bytes, seq {m[:4].hex()}")
            got += 1
            time.sleep(interval)
        assert got == n, f"{got} of {n} messages"
        assert call.code() == grpc.StatusCode.OK, call.code()
        return time.monotonic() - t0


def check_client_deadline(port: int, authority: str | None, backend_port: int, tag: str,
                          deadline: float = 0.3, limit: float = 2.0) -> dict:
    """Sleep 3000 ms with a client deadline: DEADLINE_EXCEEDED within `limit` s, and the
    backend saw the call end early (cancelled), not run its 3 s. Returns its record."""
    import grpc
    with channel(port, authority) as ch:
        t0 = time.monotonic()
        e = rpc_error(lambda: unary(ch, "Sleep", json.dumps({"ms": 3000, "tag": tag}).encode(),
                                    timeout=deadline))
        el = time.monotonic() - t0
    assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (e.code(), e.details())
    assert el < limit, f"DEADLINE_EXCEEDED after {el:.2f}s"
    rec = wait_sleep_outcome(backend_port, tag, 2.5)
    assert rec is not None, f"the backend never received Sleep {tag}"
    assert rec["outcome"] == "cancelled" and rec["elapsed_ms"] < 2500, \
        f"the backend's Sleep was not cancelled early: {rec}"
    return rec


# ---------------------------------------------------------------------------
# gRPC framing

def grpc_frame(message: bytes, compressed: bool = False) -> bytes:
    return bytes([1 if compressed else 0]) + len(message).to_bytes(4, "big") + message


def grpc_unframe(data: bytes) -> list[bytes]:
    """The messages of a gRPC-framed body (uncompressed)."""
    out, i = [], 0
    while i < len(data):
        if len(data) - i < 5:
            raise ValueError(f"truncated gRPC frame header at {i}: {data[i:]!r}")
        flag, n = data[i], int.from_bytes(data[i + 1:i + 5], "big")
        if flag != 0:
            raise ValueError(f"compressed gRPC message (flag {flag}) at {i}")
        if len(data) - i - 5 < n:
            raise ValueError(f"truncated gRPC message at {i}: {len(data) - i - 5} of {n} bytes")
        out.append(data[i + 5:i + 5 + n])
        i += 5 + n
    return out


def _decode_grpc_message(v: str | None) -> str | None:
    return None if v is None else urllib.parse.unquote(v, errors="replace")


class Exchange:
    """A response read by a raw client: status, headers, data, trailers."""

    def __init__(self):
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.data = b""
        self.trailers: list[tuple[str, str]] = []
        self.trailers_only = False  # h2: the response was one HEADERS frame with END_STREAM
        self.reset: int | None = None  # h2: RST_STREAM error code
        self.elapsed = 0.0

    @staticmethod
    def _get(items, name):
        name = name.lower()
        for k, v in items:
            if k.lower() == name:
                return v
        return None

    def header(self, name: str) -> str | None:
        return self._get(self.headers, name)

    def trailer(self, name: str) -> str | None:
        return self._get(self.trailers, name)

    def grpc_status(self) -> int | None:
        """grpc-status from the trailers, else from the headers (trailers-only)."""
        v = self.trailer("grpc-status")
        if v is None:
            v = self.header("grpc-status")
        return None if v is None else int(v)

    def grpc_message(self) -> str | None:
        v = self.trailer("grpc-message") if self.trailer("grpc-status") is not None else None
        return _decode_grpc_message(v if v is not None else self.header("grpc-message"))

    def messages(self) -> list[bytes]:
        return grpc_unframe(self.data)

    def __repr__(self):
        return (f"<Exchange status={self.status} headers={self.headers} data={self.data[:120]!r} "
                f"trailers={self.trailers} trailers_only={self.trailers_only} reset={self.reset} "
                f"elapsed={self.elapsed:.2f}s>")


class NotHTTP2(Exception):
    pass


def h2_call(port: int, authority: str, path: str, message: bytes = b"", headers=(),
            timeout: float = 10) -> Exchange:
    """One gRPC request on a fresh h2c (prior knowledge) connection, with the h2 library:
    shows how the response was framed (trailers-only or headers/data/trailers)."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    ex = Exchange()
    t0 = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                    header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", path),
                                (":authority", authority), ("content-type", "application/grpc"),
                                ("te", "trailers"), *headers])
        conn.send_data(sid, grpc_frame(message), end_stream=True)
        sock.sendall(conn.data_to_send())
        first = b""
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                raise TimeoutError(f"no complete response within {timeout}s: {ex!r}")
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                raise TimeoutError(f"no complete response within {timeout}s: {ex!r}")
            except ConnectionResetError:
                data = b""
            if len(first) < 200:
                first += data[:200]
            if first.startswith(b"HTTP/"):
                raise NotHTTP2(f"peer on port {port} does not speak HTTP/2: it answered the "
                               f"h2c preface with HTTP/1.x: {first[:200]!r}")
            if not data:
                raise ConnectionError(f"connection closed before the stream ended: {ex!r}; "
                                      f"first bytes {first[:200]!r}")
            try:
                evs = conn.receive_data(data)
            except h2.exceptions.ProtocolError as e:
                raise NotHTTP2(f"peer on port {port} does not speak HTTP/2 ({e!r}); "
                               f"it sent {first[:200]!r}")
            ended = False
            for ev in evs:
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    ex.headers = [(k, v) for k, v in ev.headers]
                    ex.status = int(ex.header(":status"))
                    ex.trailers_only = ev.stream_ended is not None
                    ended = ended or ev.stream_ended is not None
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    ex.data += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.TrailersReceived) and ev.stream_id == sid:
                    ex.trailers = [(k, v) for k, v in ev.headers]
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    ended = True
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    ex.reset = int(ev.error_code)
                    ended = True
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    if not ended:
                        raise ConnectionError(f"GOAWAY ({ev.error_code}) before the stream "
                                              f"ended: {ex!r}")
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
            if ended:
                ex.elapsed = time.monotonic() - t0
                return ex
    finally:
        sock.close()


def h1_grpc_call(port: int, authority: str, path: str, message: bytes = b"", headers=(),
                 chunked: bool = False, timeout: float = 10) -> Exchange:
    """One gRPC request over HTTP/1.1 on a raw socket: POST with content-type
    application/grpc, te: trailers, a gRPC-framed body (Content-Length, or chunked in two
    chunks). Reads the response by its framing, keeping the chunked trailers."""
    from harness import RawConn
    body = grpc_frame(message)
    hs = [("Host", authority), ("Content-Type", "application/grpc"), ("TE", "trailers"), *headers]
    hs.append(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(len(body))))
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs) + "\r\n"
    if chunked:
        half = len(body) // 2
        parts = [p for p in (body[:half], body[half:]) if p]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    ex = Exchange()
    t0 = time.monotonic()
    c = RawConn(port, timeout=timeout)
    try:
        c.send(head.encode("latin-1") + body)
        while True:
            raw = c.read_until(b"\r\n\r\n")
            lines = raw[:-4].split(b"\r\n")
            ex.status = int(lines[0].split()[1])
            ex.headers = []
            for ln in lines[1:]:
                k, _, v = ln.decode("latin-1").partition(":")
                ex.headers.append((k.strip(), v.strip()))
            if not 100 <= ex.status < 200:
                break
        te = (ex.header("transfer-encoding") or "").lower()
        cl = ex.header("content-length")
        if "chunked" in te:
            while True:
                size = int(c.read_until(b"\r\n").split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        ln = c.read_until(b"\r\n")
                        if ln == b"\r\n":
                            break
                        k, _, v = ln[:-2].decode("latin-1").partition(":")
                        ex.trailers.append((k.strip(), v.strip()))
                    break
                ex.data += c.read_exact(size)
                if c.read_exact(2) != b"\r\n":
                    raise ValueError("missing CRLF after a chunk")
        elif cl is not None:
            ex.data = c.read_exact(int(cl))
        else:
            # neither Content-Length nor chunked: the body runs to the close (RFC 9112 §6.3)
            try:
                while c._fill():
                    pass
            except (socket.timeout, TimeoutError):
                raise AssertionError(
                    f"response without Content-Length or Transfer-Encoding, so delimited by the "
                    f"connection's close, but the connection stayed open {timeout}s: {ex!r}; "
                    f"body so far {c.buf[:200]!r}") from None
            ex.data, c.buf = c.buf, b""
        ex.elapsed = time.monotonic() - t0
        return ex
    finally:
        c.close()


# ---------------------------------------------------------------------------
# self test (no Remora)

class _FakeH1GrpcServer:
    """Answers one HTTP/1.1 gRPC request per connection the way a translating proxy
    should: 200, chunked framed reply, trailers; or trailers-only as headers."""

    def __init__(self):
        from backends import Reader, read_request_body, read_request_head
        self._rd = (Reader, read_request_head, read_request_body)
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        Reader, read_head, read_body = self._rd
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            r = Reader(s)
            req = read_head(r)
            captured = []
            req._sink = captured.append
            read_body(r, req)
            msgs = grpc_unframe(b"".join(captured))
            if req.target.endswith("/Fail"):
                s.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\n"
                          b"grpc-status: 14\r\ngrpc-message: down%20now\r\ncontent-length: 0\r\n\r\n")
            else:
                reply = grpc_frame(b"echo:" + msgs[0])
                s.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\n"
                          b"transfer-encoding: chunked\r\ntrailer: grpc-status\r\n\r\n"
                          + b"%x\r\n%s\r\n" % (len(reply), reply)
                          + b"0\r\ngrpc-status: 0\r\nx-trailer: t\r\n\r\n")
            s.close()


def _selftest() -> None:
    import tempfile
    import grpc
    from harness import ProcManager, free_port
    pm = ProcManager(Path(tempfile.mkdtemp(prefix="grpc-peers-")))
    t_all = time.monotonic()
    try:
        b = start_backends(pm, ["adservice", "adservice-myfeature"])
        a, f = b["adservice"].port, b["adservice-myfeature"].port

        def step(what, fn, *args):
            t0 = time.monotonic()
            r = fn(*args)
            print(f"  ok  {what} ({time.monotonic() - t0:.2f}s)", flush=True)
            return r

        step("unary", check_unary, a, "adservice", "adservice")
        step("served_by", lambda: [served_by(a, None, u) for u in ("alice", None)] and
             served_by(f, None, "alice") == "adservice-myfeature")
        step("fail (UNAVAILABLE + message + trailers)", check_fail, a, "adservice", "adservice")
        step("server stream 100", check_server_stream, a, "adservice")
        times = step("server stream unbuffered", check_server_stream_unbuffered, a, "adservice")
        print(f"      arrival times {[round(t, 2) for t in times]}")
        step("client stream", check_client_stream, a, "adservice", "adservice")
        step("bidi interleaved", check_bidi_interleaved, a, "adservice")
        step("3 MB request and response", check_big, a, "adservice")
        el = step("slow consumer 200 x 1 MiB", check_slow_consumer, a, "adservice")
        assert el > 2.0, el
        rec = step("client deadline 0.3s on Sleep 3000", check_client_deadline, a, "adservice", a, "sd1")
        print(f"      backend record {rec}")

        # raw h2 client against the backend
        ex = step("h2 unary", h2_call, a, "adservice", "/test.Echo/Unary", b"raw")
        assert ex.status == 200 and not ex.trailers_only and ex.grpc_status() == 0, ex
        assert json.loads(ex.messages()[0])["len"] == 3, ex
        assert ex.trailer("x-trailer") == "t-adservice", ex
        ex = step("h2 fail is trailers-only", h2_call, a, "adservice", "/test.Echo/Fail")
        assert ex.status == 200 and ex.trailers_only and ex.grpc_status() == 14, ex
        assert ex.grpc_message() == FAIL_MESSAGE.format(name="adservice"), ex
        assert ex.header("x-fail-reason") == "maintenance", ex
        ex = step("h2 grpc-timeout 300m on Sleep 3000", h2_call, a, "adservice", "/test.Echo/Sleep",
                  json.dumps({"ms": 3000, "tag": "h2t"}).encode(), [("grpc-timeout", "300m")])
        print(f"      {ex!r}")
        assert ex.grpc_status() == 4 and ex.elapsed < 2, ex
        ex = step("h2 unknown method", h2_call, a, "adservice", "/test.Echo/Nope")
        assert ex.grpc_status() == 12, ex
        # a peer that is not h2
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)

        def h1_answer():
            s, _ = ls.accept()
            s.recv(65536)
            s.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            s.close()
        threading.Thread(target=h1_answer, daemon=True).start()
        try:
            h2_call(ls.getsockname()[1], "x", "/test.Echo/Unary", timeout=5)
            raise AssertionError("h2_call against an HTTP/1.1 peer did not fail")
        except NotHTTP2 as e:
            print(f"  ok  h2_call against HTTP/1.1 peer raises: {str(e)[:120]}")
        ls.close()
        # grpcio against a closed port: UNAVAILABLE, fast
        with channel(free_port(), "adservice") as ch:
            e = rpc_error(lambda: unary(ch, "Unary", timeout=5))
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e.code()
        print("  ok  grpcio to a closed port: UNAVAILABLE")

        # raw HTTP/1.1 gRPC client against a fake translating server
        fake = _FakeH1GrpcServer()
        for chunked in (False, True):
            ex = h1_grpc_call(fake.port, "adservice", "/test.Echo/Unary", b"hi", chunked=chunked)
            assert ex.status == 200 and ex.messages() == [b"echo:hi"], ex
            assert ex.trailer("grpc-status") == "0" and ex.trailer("x-trailer") == "t", ex
        ex = h1_grpc_call(fake.port, "adservice", "/test.Echo/Fail", b"")
        assert ex.grpc_status() == 14 and ex.grpc_message() == "down now", ex
        print("  ok  h1_grpc_call (content-length, chunked, trailers-only as headers)")

        ev = events(a)
        print(f"  backend calls: {ev['calls']}")
        for n, be in b.items():
            assert be.proc.alive(), be.proc.describe()
    finally:
        pm.cleanup()
    print(f"grpc_peers selftest: ok ({time.monotonic() - t_all:.1f}s)")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        name, port = "grpc", 0
        args = sys.argv[2:]
        for i, a in enumerate(args):
            if a == "--name":
                name = args[i + 1]
            if a == "--port":
                port = int(args[i + 1])
        serve_main(name, port)
    elif len(sys.argv) >= 2 and sys.argv[1] == "selftest":
        _selftest()
    else:
        print(__doc__)
        sys.exit(2)
