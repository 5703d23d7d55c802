"""gRPC through the proxy (HTTP/2 both sides, and HTTP/1.1 client -> HTTP/2 backend),
with real peers: grpcio clients and grpcio servers (grpc_peers.py, generic handlers, no
protoc), plus raw clients (h2 library, raw HTTP/1.1 socket) where a test must see how a
response is framed.

Configuration (the mesh conventions of the gRPC issue): the client connects to the mesh
outbound listener with plaintext h2c prior knowledge and :authority `adservice`; each
backend is a STATIC ServiceEntry whose port 50051 is `name: grpc, protocol: GRPC` (so the
proxy speaks HTTP/2 upstream); the VirtualService `adservice` routes to port 50051, with
the feature-branch rule (metadata `userid: alice` -> adservice-myfeature) first where a
test needs it.

What a client sees is asserted by the `check_*` scenarios of grpc_peers.py;
`test_peers_direct_no_proxy` runs them with no proxy at all (grpcio client -> grpcio
server), so a failure of the same scenario through the proxy is the proxy's.
Proxy-generated errors for gRPC requests are HTTP 200 trailers-only responses carrying
grpc-status and grpc-message (SPEC §6): those are checked with the raw h2 client, since
grpcio alone maps a plain HTTP 404/503 to UNIMPLEMENTED/UNAVAILABLE too.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import grpc
import pytest

import grpc_peers as gp
import harness
from harness import ProcManager, free_port

GRPC_PORT = 50051
MIB = 1024 * 1024


# ---------------------------------------------------------------------------
# helpers

def _se(host: str, backend_port: int) -> dict:
    return harness.service_entry(f"se-{host}", host, [backend_port], protocol="GRPC",
                                 port_number=GRPC_PORT, port_name="grpc")


def _route(host: str) -> list[dict]:
    return [{"destination": {"host": host, "port": {"number": GRPC_PORT}}}]


def _adservice_vs(timeout: str | None = None, feature_branch: bool = False) -> dict:
    http = []
    if feature_branch:
        http.append({"match": [{"headers": {"userid": {"exact": "alice"}}}],
                     "route": _route("adservice-myfeature")})
    rule: dict = {"route": _route("adservice")}
    if timeout:
        rule["timeout"] = timeout
    http.append(rule)
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "adservice", "namespace": "default"},
            "spec": {"hosts": ["adservice"], "http": http}}


def _start(env, names=("adservice",), timeout: str | None = None, feature_branch: bool = False):
    """grpcio backends named `names` (each its own ServiceEntry host), the adservice
    VirtualService, and a proxy. Returns (proxy, {name: GrpcBackend})."""
    backends = gp.start_backends(env.pm, list(names))
    resources = [_se(n, b.port) for n, b in backends.items()]
    resources.append(_adservice_vs(timeout, feature_branch))
    return env.run_with(resources, name="remora-grpc"), backends


def _sleep_req(ms: int, tag: str) -> bytes:
    return json.dumps({"ms": ms, "tag": tag}).encode()


def _assert_proxy_trailers_only(ex: gp.Exchange, code: int):
    """A proxy-generated gRPC error: HTTP 200, one HEADERS frame with END_STREAM carrying
    content-type application/grpc, grpc-status `code` and a grpc-message."""
    assert ex.status == 200, f"HTTP status {ex.status}, want 200 (trailers-only gRPC error): {ex!r}"
    assert ex.trailers_only, f"not a trailers-only response: {ex!r}"
    assert (ex.header("content-type") or "").startswith("application/grpc"), ex
    assert ex.grpc_status() == code, f"grpc-status {ex.grpc_status()}, want {code}: {ex!r}"
    assert ex.grpc_message(), f"no grpc-message: {ex!r}"


# ---------------------------------------------------------------------------
# the peers alone (no proxy, no remora binary needed)

@pytest.fixture
def peers_pm(tmp_path):
    pm = ProcManager(tmp_path / "logs")
    try:
        yield pm
    finally:
        pm.cleanup()


def test_peers_direct_no_proxy(peers_pm):
    """Every client scenario against a grpcio backend directly: the peers and the test
    logic work, whatever the proxy does."""
    b = gp.start_backends(peers_pm, ["adservice"])["adservice"]
    p = b.port
    gp.check_unary(p, "adservice", "adservice")
    assert gp.served_by(p, "adservice", "alice") == "adservice"
    gp.check_fail(p, "adservice", "adservice")
    gp.check_server_stream(p, "adservice", 100, 1000)
    gp.check_server_stream_unbuffered(p, "adservice")
    gp.check_client_stream(p, "adservice", "adservice")
    gp.check_bidi_interleaved(p, "adservice")
    gp.check_big(p, "adservice", 3_000_000)
    gp.check_slow_consumer(p, "adservice", n=50, size=MIB)
    gp.check_client_deadline(p, "adservice", p, "direct-deadline")
    ex = gp.h2_call(p, "adservice", "/test.Echo/Fail")
    assert ex.trailers_only and ex.grpc_status() == 14, ex  # grpc core's trailers-only


# ---------------------------------------------------------------------------
# HTTP/2 client -> proxy -> HTTP/2 (GRPC) backend

def test_unary(env):
    """Unary: served by the backend; request metadata in, the backend's initial and
    trailing metadata (text and -bin) and status out, untouched; 20 concurrent calls on
    one connection. On the wire: 200, data, then grpc-status 0 and the custom trailer in
    the trailers."""
    px, _ = _start(env)
    gp.check_unary(px.port, "adservice", "adservice")
    ex = gp.h2_call(px.port, "adservice", "/test.Echo/Unary", b"raw h2", [("userid", "bob")])
    assert ex.status == 200 and not ex.trailers_only, ex
    assert ex.trailer("grpc-status") == "0", ex
    assert ex.trailer("x-trailer") == "t-adservice", ex
    doc = json.loads(ex.messages()[0])
    assert (doc["name"], doc["userid"], doc["len"]) == ("adservice", "bob", 6), doc
    assert px.proc.alive()


def test_feature_branch_userid(env):
    """The feature-branch rule on gRPC metadata: userid=alice -> adservice-myfeature,
    everything else -> adservice (also for the FQDN authority)."""
    px, backends = _start(env, ("adservice", "adservice-myfeature"), feature_branch=True)
    for auth in ("adservice", "adservice.default.svc.cluster.local"):
        assert gp.served_by(px.port, auth, "alice") == "adservice-myfeature", auth
        assert gp.served_by(px.port, auth, "bob") == "adservice", auth
        assert gp.served_by(px.port, auth, "Alice") == "adservice", auth  # exact is case-sensitive
        assert gp.served_by(px.port, auth, "alice2") == "adservice", auth
        assert gp.served_by(px.port, auth, None) == "adservice", auth
    # the branch serves streams too
    with gp.channel(px.port, "adservice") as ch:
        call = ch.unary_stream("/test.Echo/ServerStream")(
            json.dumps({"n": 3, "size": 8}).encode(), metadata=[("userid", "alice")], timeout=10)
        assert len(list(call)) == 3
    ev = gp.events(backends["adservice-myfeature"].port)
    assert ev["calls"].get("ServerStream") == 1, ev
    assert px.proc.alive()


def test_backend_unavailable_passes_through(env):
    """UNAVAILABLE (and PERMISSION_DENIED) from the backend reach the client with the
    backend's message and trailing metadata untouched."""
    px, _ = _start(env)
    gp.check_fail(px.port, "adservice", "adservice")
    ex = gp.h2_call(px.port, "adservice", "/test.Echo/Fail")
    assert ex.status == 200, ex
    assert ex.grpc_status() == 14, ex
    assert ex.grpc_message() == gp.FAIL_MESSAGE.format(name="adservice"), ex
    assert "maintenance" in (ex.header("x-fail-reason"), ex.trailer("x-fail-reason")), ex
    assert px.proc.alive()


def test_server_streaming_100(env):
    """100 server-streamed messages all arrive, in order, then OK and the trailers."""
    px, _ = _start(env)
    gp.check_server_stream(px.port, "adservice", 100, 1000)
    assert px.proc.alive()


def test_server_stream_not_buffered(env):
    """Messages sent 300 ms apart arrive as they are sent, not together at the end."""
    px, _ = _start(env)
    gp.check_server_stream_unbuffered(px.port, "adservice")


def test_client_streaming(env):
    """60 client-streamed messages (0 B .. 64 KiB) counted and hashed by the backend."""
    px, _ = _start(env)
    gp.check_client_stream(px.port, "adservice", "adservice")


def test_bidi_streaming_interleaved(env):
    """Send one, read its echo, send the next (20 rounds) with the request stream open."""
    px, _ = _start(env)
    gp.check_bidi_interleaved(px.port, "adservice", 20)
    assert px.proc.alive()


def test_3mb_request_and_response(env):
    """A 3 MB request (sha256 at the backend) and a 3 MB response (byte-exact)."""
    px, _ = _start(env)
    gp.check_big(px.port, "adservice", 3_000_000)
    assert px.proc.alive()


def test_slow_consumer_memory_bounded(env):
    """The backend streams 200 x 1 MiB; the client reads one every 10 ms (>= 2 s). All
    arrive intact, in order, and the proxy's RSS grows by less than 48 MiB meanwhile:
    back-pressure, not buffering (the client itself absorbs only a few MiB)."""
    px, _ = _start(env)
    pid = px.proc.pid
    with gp.channel(px.port, "adservice") as ch:  # warm up: connections and code paths
        gp.unary(ch, "Unary", b"warm-up" * 1000)
    base = harness.rss_kb(pid)
    samples = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                samples.append(harness.rss_kb(pid))
            except (OSError, RuntimeError):
                return
            stop.wait(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        elapsed = gp.check_slow_consumer(px.port, "adservice", n=200, size=MIB, interval=0.01)
    finally:
        stop.set()
        th.join(2)
    growth_mib = (max(samples) - base) / 1024
    assert elapsed >= 2.0, elapsed
    assert growth_mib < 48, (f"proxy RSS grew by {growth_mib:.1f} MiB while 200 MiB streamed to a "
                             f"slow reader (base {base} kB, max {max(samples)} kB, "
                             f"{len(samples)} samples)")
    assert px.proc.alive()


# ---------------------------------------------------------------------------
# errors the proxy generates for gRPC requests: trailers-only, HTTP 200

def test_unknown_authority_unimplemented(env):
    """No route for the authority: grpc-status 12 UNIMPLEMENTED, trailers-only."""
    px, backends = _start(env)
    with gp.channel(px.port, "nosuchservice.example") as ch:
        e = gp.rpc_error(lambda: gp.unary(ch, "Unary", b"x", timeout=5))
    assert e.code() == grpc.StatusCode.UNIMPLEMENTED, (e.code(), e.details())
    assert e.details(), "no grpc-message"
    ex = gp.h2_call(px.port, "nosuchservice.example", "/test.Echo/Unary", b"x", timeout=5)
    _assert_proxy_trailers_only(ex, 12)
    assert gp.events(backends["adservice"].port)["calls"] == {}, "the request reached a backend"
    assert px.proc.alive()


def test_connect_failure_unavailable(env):
    """The ServiceEntry's endpoint is a closed port: grpc-status 14 UNAVAILABLE,
    trailers-only, promptly."""
    closed = free_port()
    px = env.run_with([_se("adservice", closed), _adservice_vs()], name="remora-grpc")
    with gp.channel(px.port, "adservice") as ch:
        t0 = time.monotonic()
        e = gp.rpc_error(lambda: gp.unary(ch, "Unary", b"x", timeout=10))
        el = time.monotonic() - t0
    assert e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())
    assert e.details(), "no grpc-message"
    assert el < 5, f"UNAVAILABLE after {el:.1f}s"
    ex = gp.h2_call(px.port, "adservice", "/test.Echo/Unary", b"x", timeout=10)
    _assert_proxy_trailers_only(ex, 14)
    assert px.proc.alive()


def test_backend_killed_mid_call_unavailable(env):
    """The backend dies (SIGKILL) while a call waits for its reply: the client gets
    grpc-status 14 UNAVAILABLE, trailers-only, within seconds."""
    px, backends = _start(env)
    b = backends["adservice"]
    result: dict = {}

    def call():
        try:
            result["ex"] = gp.h2_call(px.port, "adservice", "/test.Echo/Sleep",
                                      _sleep_req(8000, "killed"), timeout=10)
        except Exception as e:  # reported below
            result["error"] = e

    th = threading.Thread(target=call, daemon=True)
    th.start()
    deadline = time.monotonic() + 5
    while not any(s["tag"] == "killed" for s in gp.events(b.port)["sleeps"]):
        assert time.monotonic() < deadline, f"the call never reached the backend: {result}"
        assert th.is_alive(), f"the call ended before reaching the backend: {result}"
        time.sleep(0.05)
    os.killpg(b.proc.pid, signal.SIGKILL)
    t0 = time.monotonic()
    th.join(8)
    assert not th.is_alive(), "no response within 8 s of the backend's death"
    assert "error" not in result, f"client error: {result['error']!r}"
    assert time.monotonic() - t0 < 5
    _assert_proxy_trailers_only(result["ex"], 14)
    assert px.proc.alive()


# ---------------------------------------------------------------------------
# deadlines: grpc-timeout, and the route timeout capping it

def test_client_deadline(env):
    """Client deadline 0.3 s (grpc-timeout) on Sleep 3000 ms: DEADLINE_EXCEEDED within 2 s,
    and the backend's call is cancelled early (the proxy propagates it), not run 3 s."""
    px, backends = _start(env)
    gp.check_client_deadline(px.port, "adservice", backends["adservice"].port, "client-deadline")
    assert px.proc.alive()


def test_grpc_timeout_header_is_a_deadline(env):
    """A raw h2 request with `grpc-timeout: 300m` and no timer of its own: the response
    is grpc-status 4 DEADLINE_EXCEEDED (HTTP 200) within 2 s."""
    px, backends = _start(env)
    ex = gp.h2_call(px.port, "adservice", "/test.Echo/Sleep", _sleep_req(3000, "h2-timeout"),
                    [("grpc-timeout", "300m")], timeout=10)
    assert ex.status == 200, ex
    assert ex.grpc_status() == 4, ex
    assert ex.elapsed < 2, ex
    rec = gp.wait_sleep_outcome(backends["adservice"].port, "h2-timeout", 2.5)
    assert rec and rec["outcome"] == "cancelled", f"backend record: {rec}"
    assert px.proc.alive()


def test_route_timeout_caps_grpc_timeout(env):
    """Route `timeout: 0.5s`, client deadline 30 s, Sleep 3000 ms: DEADLINE_EXCEEDED from
    the proxy's own timer well before 3 s (the client's deadline is far away), as an
    HTTP 200 trailers-only grpc-status 4; the backend's call is cancelled."""
    px, backends = _start(env, timeout="0.5s")
    with gp.channel(px.port, "adservice") as ch:
        t0 = time.monotonic()
        e = gp.rpc_error(lambda: gp.unary(ch, "Sleep", _sleep_req(3000, "route-1"), timeout=30))
        el = time.monotonic() - t0
    assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (e.code(), e.details())
    assert 0.4 <= el < 2.0, f"DEADLINE_EXCEEDED after {el:.2f}s (route timeout 0.5s)"
    ex = gp.h2_call(px.port, "adservice", "/test.Echo/Sleep", _sleep_req(3000, "route-2"),
                    [("grpc-timeout", "30S")], timeout=10)
    _assert_proxy_trailers_only(ex, 4)
    assert ex.elapsed < 2.0, ex
    for tag in ("route-1", "route-2"):
        rec = gp.wait_sleep_outcome(backends["adservice"].port, tag, 2.5)
        assert rec and rec["outcome"] == "cancelled", f"backend record {tag}: {rec}"
    assert px.proc.alive()


# ---------------------------------------------------------------------------
# HTTP/1.1 client -> proxy -> HTTP/2 (GRPC) backend

@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_http1_client_to_grpc_backend_unary(env, framing):
    """POST /test.Echo/Unary over HTTP/1.1 (content-type application/grpc, te: trailers,
    gRPC-framed body): 200, the framed reply from the backend (metadata passed), and the
    backend's trailers (grpc-status 0, x-trailer) as chunked trailers."""
    px, _ = _start(env)
    msg = b"via http/1.1"
    ex = gp.h1_grpc_call(px.port, "adservice", "/test.Echo/Unary", msg,
                         [("userid", "bob"), ("x-client-md", "h1")], chunked=(framing == "chunked"))
    assert ex.status == 200, ex
    assert (ex.header("content-type") or "").startswith("application/grpc"), ex
    msgs = ex.messages()
    assert len(msgs) == 1, ex
    doc = json.loads(msgs[0])
    assert (doc["name"], doc["userid"], doc["len"]) == ("adservice", "bob", len(msg)), doc
    assert doc["metadata"].get("x-client-md") == "h1", doc
    assert ex.trailer("grpc-status") == "0", f"trailers {ex.trailers}, headers {ex.headers}"
    assert ex.trailer("x-trailer") == "t-adservice", ex
    assert px.proc.alive()


def test_http1_client_grpc_unavailable(env):
    """UNAVAILABLE from the backend (trailers-only on h2) over HTTP/1.1: 200 with
    grpc-status 14 and the backend's message (in the headers or the trailers), in a
    response whose end the client can find on a keep-alive connection (Content-Length,
    chunked, or the connection closed)."""
    px, _ = _start(env)
    ex = gp.h1_grpc_call(px.port, "adservice", "/test.Echo/Fail", b"", timeout=5)
    assert ex.status == 200, ex
    assert ex.grpc_status() == 14, ex
    assert ex.grpc_message() == gp.FAIL_MESSAGE.format(name="adservice"), ex
    assert px.proc.alive()
