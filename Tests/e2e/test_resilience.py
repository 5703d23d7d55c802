"""Resilience (issue 8): retries, per-try and route timeouts, outlier detection, load
balancing (consistent hashing) and circuit breaking, with real processes on free ports.

- Rolling upgrade (acceptance): wrk keep-alive load through the proxy while one of three
  `remora echo` endpoints is SIGKILLed, another is replaced by one answering 503, and the
  third is moved to a new port (admin `PUT` of the ServiceEntry); with Istio's default
  retry policy (route without `retries`) and outlierDetection {consecutive5xxErrors: 1}
  the client sees no non-2xx and no socket error.
- The root cause of the 502s that test can see, made deterministic: an endpoint closing
  all its keep-alive connections while a request is in flight on one of them must be
  survived by the proxy's replay of that request on a fresh connection.
- Route `retries: {attempts: 3, retryOn: 5xx}` hides a 503 endpoint; `attempts: 0` does
  not (so the retries are what fixed it).
- `perTryTimeout` moves a request off a slow backend (an in-test Python server that
  sleeps) to a fast one well within the route timeout.
- Route `timeout: 300ms` against `/delay/3000`: 504 in about 300 ms, `UT` in the access log.
- gRPC (acceptance): a backend method answering UNAVAILABLE once (grpc_peers `FlakyOnce`)
  is retried by the default policy; the grpcio client sees OK, the backend saw 2 calls.
- Consistent hashing (acceptance) on a header: every user sticks to one endpoint; adding
  a fifth endpoint moves only about a fifth of the users (ringHash and maglev).
- Outlier ejection: a 503 endpoint stops receiving traffic for `baseEjectionTime`, then
  comes back; the ejection shows in the outlier gauges/counters and in `GET /clusters`.
- `upstream_rq_retry_success` counts retries that fixed a request.
- Circuit breaking (acceptance): maxConnections 1 + http1MaxPendingRequests 1, 12
  concurrent slow requests: one is served, one waits as pending and is served after it,
  ten get an immediate 503 with `x-remora-overloaded: true`; the counters say the same.

Cluster counters are read from the metrics port (`/stats/prometheus`,
`remora_cluster_<name>{cluster="outbound|80||HOST"}`), response flags from the JSON
access log (`accessLog: {path: FILE}` in the Proxy resource).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import harness
from h2_peers import parse_h2load
from harness import ConnectionClosed, RawConn, free_port, http_request

HOST = "backend.local"


# ---------------------------------------------------------------------------
# helpers

def start_proxy(env, resources: list[dict], access_log: Path | None = None, name: str = "remora",
                workers: int = 1):
    """A proxy on free ports serving `resources`; access log to `access_log` when given."""
    ports = {k: free_port() for k in ("listen", "admin", "health", "metrics")}
    extra = {"accessLog": {"path": str(access_log)}} if access_log else None
    docs = [harness.proxy_resource(ports["listen"], ports["admin"], ports["health"],
                                   ports["metrics"], workers=workers, extra=extra)] + resources
    return env.run_proxy([env.write(docs, f"{name}-{ports['listen']}.yaml")], ports, name)


def se(ports: list[int], name: str = "backend", host: str = HOST) -> dict:
    return harness.service_entry(name, host, ports)


def vs(name: str = "backend", host: str = HOST, retries: dict | None = None,
       timeout: str | None = None) -> dict:
    doc = harness.virtual_service(name, [host], host, timeout)
    if retries is not None:
        doc["spec"]["http"][0]["retries"] = retries
    return doc


def dr(traffic_policy: dict, name: str = "backend", host: str = HOST) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"host": host, "trafficPolicy": traffic_policy}}


def admin(px, method: str, path: str, body: dict | None = None, timeout: float = 10):
    """(status, body text) of one admin API request (JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{px.ports['admin']}{path}", data=data,
                                 method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def put_resource(px, kind: str, doc: dict) -> None:
    md = doc["metadata"]
    st, body = admin(px, "PUT", f"/config/{kind}/{md['namespace']}/{md['name']}", doc)
    assert st == 200, f"PUT {kind}/{md['name']} -> {st}: {body}"


_METRIC = re.compile(r'^(remora_cluster_\w+)\{([^}]*)\}\s+([0-9.eE+-]+)$')


def cluster_stats(px, host: str = HOST) -> dict[str, float]:
    """remora_cluster_* values (prefix stripped) of the clusters whose name ends in `host`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{px.ports['metrics']}/stats/prometheus",
                                timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC.match(line.strip())
        if not m:
            continue
        cm = re.search(r'cluster="([^"]*)"', m.group(2))
        if cm and cm.group(1).endswith("|" + host):
            name = m.group(1)[len("remora_cluster_"):]
            out[name] = out.get(name, 0.0) + float(m.group(3))
    return out


def access_log_lines(path: Path, want=lambda d: True, timeout: float = 3.0,
                     count: int = 1) -> list[dict]:
    """The access log's JSON lines satisfying `want`, once at least `count` are there (or
    what is there at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        docs = []
        if path.exists():
            for ln in path.read_text("utf-8", "replace").splitlines():
                try:
                    d = json.loads(ln)
                except ValueError:
                    continue
                if want(d):
                    docs.append(d)
        if len(docs) >= count or time.monotonic() > deadline:
            return docs
        time.sleep(0.05)


class KeepAlive:
    """GETs on one keep-alive connection (reopened if the proxy closes it)."""

    def __init__(self, port: int, host: str = HOST):
        self.port, self.host, self.c = port, host, None

    def get(self, path: str = "/", headers=()) -> harness.Response:
        raw = (f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")
        for attempt in range(2):
            if self.c is None:
                self.c = RawConn(self.port)
            try:
                self.c.send(raw)
                r = self.c.read_response()
            except (ConnectionClosed, OSError):
                self.close()
                if attempt:
                    raise
                continue
            if (r.header("connection") or "").lower() == "close":
                self.close()
            return r
        raise AssertionError("unreachable")

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def parse_wrk(out: str) -> dict:
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    assert m, f"cannot parse wrk output:\n{out}"
    res = {"requests": int(m.group(1)), "socket_errors": {}, "non2xx": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    return res


class SlowBackend:
    """An HTTP/1.1 server (thread per connection) that waits `delay` seconds before each
    200 reply (header x-echo-name: NAME); counts the requests it got."""

    def __init__(self, name: str = "slow", delay: float = 2.0):
        outer = self
        self.name, self.delay, self.hits = name, delay, 0
        self.lock = threading.Lock()

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                with outer.lock:
                    outer.hits += 1
                time.sleep(outer.delay)
                body = json.dumps({"name": outer.name}).encode()
                try:
                    self.send_response(200)
                    self.send_header("x-echo-name", outer.name)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------
# 1. rolling upgrade under load (acceptance)

def _load_client(kind: str, url: str) -> list[str]:
    """8 s of steady load: wrk (HTTP/1.1, 8 keep-alive connections) or h2load (h2c, 8
    connections of 8 concurrent streams each)."""
    if kind == "wrk":
        return ["wrk", "-t1", "-c8", "-d8s", "-H", f"Host: {HOST}", url]
    return ["h2load", "-D", "8", "-c8", "-m8", "-H", f":authority: {HOST}", url]


@pytest.mark.parametrize("client", ["wrk", "h2load"])
def test_rolling_upgrade_under_load_no_errors(env, client):
    """wrk or h2load for 8 s through the proxy; during it: e1 is SIGKILLed (stays in the
    ServiceEntry), e2 is replaced by an endpoint answering 503 (new port, admin PUT),
    e3 moves to a new port (admin PUT, then the old process is killed). Default retry
    policy + outlierDetection consecutive5xxErrors 1: zero non-2xx, zero socket errors."""
    e1, e2, e3 = env.echo("e1"), env.echo("e2"), env.echo("e3")
    log = env.dir / f"access-rolling-{client}.log"
    od = {"consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "30s",
          "maxEjectionPercent": 100}
    px = start_proxy(env, [se([e1.port, e2.port, e3.port]), vs(), dr({"outlierDetection": od})],
                     access_log=log)
    for _ in range(6):
        r = http_request(px.port, host=HOST)
        assert r.status == 200, r

    wrk = subprocess.Popen(_load_client(client, px.url("/")), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL)
    t0 = time.monotonic()
    events = []

    def at(t):
        left = t0 + t - time.monotonic()
        if left > 0:
            time.sleep(left)

    try:
        # 1.5 s: a crash. e1 stays in the configuration; nothing listens there any more.
        at(1.5)
        os.kill(e1.proc.pid, signal.SIGKILL)
        events.append(f"{time.monotonic() - t0:.2f}s SIGKILL e1 (:{e1.port})")
        # 3.0 s: e2 replaced by a broken build answering 503 on a new port.
        at(3.0)
        bad = env.echo("e2-bad", status=503)
        put_resource(px, "serviceentries", se([e1.port, bad.port, e3.port]))
        events.append(f"{time.monotonic() - t0:.2f}s PUT e2 -> e2-bad (:{bad.port}, 503)")
        time.sleep(0.3)
        e2.proc.kill()
        # 5.0 s: e3 restarted on a new port.
        at(5.0)
        e3b = env.echo("e3-new")
        put_resource(px, "serviceentries", se([e1.port, bad.port, e3b.port]))
        events.append(f"{time.monotonic() - t0:.2f}s PUT e3 -> e3-new (:{e3b.port})")
        time.sleep(0.3)
        e3.proc.kill()
        events.append(f"{time.monotonic() - t0:.2f}s killed old e3")
        out, err = wrk.communicate(timeout=20)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    assert wrk.returncode == 0, f"{client} rc={wrk.returncode}\n{out}\n{err}"
    if client == "wrk":
        res = parse_wrk(out)
    else:
        h = parse_h2load(out)
        res = {"requests": h["done"], "non2xx": h["done"] - h["2xx"],
               "socket_errors": {"failed": h["failed"], "errored": h["errored"], "timeout": h["timeout"]}
               if h["failed"] + h["errored"] + h["timeout"] else {}}
    stats = cluster_stats(px)
    bad_lines = access_log_lines(log, lambda d: d.get("response_code") != 200, timeout=1.0, count=0)
    flags = Counter((d.get("response_code"), d.get("response_flags"), d.get("upstream_host"))
                    for d in bad_lines)
    socket_errors = sum(res["socket_errors"].values())
    print(f"\nrolling upgrade ({client}): {res['requests']} requests, non-2xx {res['non2xx']}, "
          f"socket errors {res['socket_errors'] or 0}")
    print("  " + "\n  ".join(events))
    print(f"  retries {stats.get('upstream_rq_retry')}, retry_success "
          f"{stats.get('upstream_rq_retry_success')}, connect_fail "
          f"{stats.get('upstream_cx_connect_fail')}, ejections "
          f"{stats.get('outlier_detection_ejections_enforced_total')} (active "
          f"{stats.get('outlier_detection_ejections_active')})")
    if flags:
        print(f"  non-200 in the access log (status, flags, upstream): {dict(flags)}")
    assert res["requests"] > 500, f"too little load to mean anything:\n{out}"
    assert res["non2xx"] == 0 and socket_errors == 0, (
        f"client saw {res['non2xx']} non-2xx and socket errors {res['socket_errors']} during the "
        f"rolling upgrade; non-200 access-log lines (status, flags, upstream): {dict(flags)}\n{out}")
    assert stats.get("upstream_rq_retry", 0) > 0, stats
    # (ejection counters: see test_outlier_ejection_visible_in_metrics_and_clusters)


class DropAllBackend:
    """Keep-alive HTTP/1.1 server (thread per connection): `/slow` answers after 300 ms,
    anything else at once (200, x-echo-name: dropall). When `drop` is set, the next request
    makes it close every open connection (FIN) without answering, like a crashing
    process, while it keeps accepting new connections."""

    def __init__(self):
        import socket
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.conns: set = set()
        self.lock = threading.Lock()
        self.drop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                self.conns.add(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        import socket
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                with self.lock:
                    drop, self.drop = self.drop, False
                    if drop:
                        for c in list(self.conns):
                            try:
                                c.shutdown(socket.SHUT_RDWR)
                            except OSError:
                                pass
                            c.close()
                        self.conns.clear()
                        return
                if b" /slow " in head.split(b"\r\n")[0]:
                    time.sleep(0.3)
                s.sendall(b"HTTP/1.1 200 OK\r\nx-echo-name: dropall\r\ncontent-length: 2\r\n\r\nok")
        except OSError:
            return

    def stop(self):
        self.ls.close()
        with self.lock:
            for c in self.conns:
                c.close()


def test_keepalive_replay_survives_endpoint_dropping_all_connections(env):
    """The root of the rolling-upgrade 502s, made deterministic: the proxy holds several
    pooled keep-alive connections to an endpoint; the endpoint closes all of them at once
    while a request is in flight on one (a crash). That request was sent on a reused
    connection and got no response byte, so the proxy replays it on a fresh connection;
    the endpoint accepts new connections, so the client must get 200, not 502 UC."""
    b = DropAllBackend()
    env.servers.append(b)
    log = env.dir / "access-drop.log"
    px = start_proxy(env, [se([b.port]), vs()], access_log=log)
    statuses = []
    for _ in range(5):
        # four concurrent slow requests: four upstream connections, then pooled
        ths = [threading.Thread(target=http_request, args=(px.port,), kwargs={"path": "/slow", "host": HOST})
               for _ in range(4)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(10)
        time.sleep(0.1)
        b.drop = True
        statuses.append(http_request(px.port, host=HOST).status)
    bad = access_log_lines(log, lambda d: d.get("response_code") != 200, timeout=0.5, count=0)
    print(f"\nrequests in flight when the endpoint dropped all its connections: {statuses}; "
          f"non-200 log lines {[(d['response_code'], d['response_flags']) for d in bad]}")
    assert statuses == [200] * 5, (
        f"statuses {statuses} (flags {[d['response_flags'] for d in bad]}): a request in flight on a "
        f"reused connection when the endpoint closed all its connections was not replayed "
        f"successfully; with a single pooled connection the same replay succeeds, so the replay "
        f"probably took another stale pooled connection to the same endpoint")


# ---------------------------------------------------------------------------
# 2. route retries on 5xx

def _names(px, n: int, host: str = HOST) -> Counter:
    ka = KeepAlive(px.port, host)
    try:
        return Counter((r.status, r.header("x-echo-name")) for r in (ka.get("/") for _ in range(n)))
    finally:
        ka.close()


def test_route_retries_on_5xx_hide_a_503_endpoint(env):
    good, bad = env.echo("good"), env.echo("bad", status=503)
    px = start_proxy(env, [se([good.port, bad.port]), vs(retries={"attempts": 3, "retryOn": "5xx"})])
    seen = _names(px, 100)
    stats = cluster_stats(px)
    print(f"\nattempts 3 / 5xx: {dict(seen)}; retries {stats.get('upstream_rq_retry')}, "
          f"retry_success {stats.get('upstream_rq_retry_success')}, "
          f"rq_total {stats.get('upstream_rq_total')}")
    assert seen == Counter({(200, "good"): 100}), f"with retries 3 on 5xx: {dict(seen)}"
    assert stats.get("upstream_rq_retry", 0) > 0, f"no retry counted: {stats}"
    assert stats.get("upstream_rq_total", 0) == 100 + stats["upstream_rq_retry"], stats

    # attempts 0: retries off (Istio drops the whole policy), so the 503s come through
    put_resource(px, "virtualservices", vs(retries={"attempts": 0}))
    before = stats["upstream_rq_retry"]
    seen = _names(px, 100)
    after = cluster_stats(px).get("upstream_rq_retry", 0)
    print(f"attempts 0: {dict(seen)}; retries during it {after - before}")
    assert seen[(503, "bad")] > 0, f"with attempts 0 no 503 came through: {dict(seen)}"
    assert seen[(503, "bad")] + seen[(200, "good")] == 100, dict(seen)
    assert after == before, f"{after - before} retries with attempts 0"


def test_retry_success_counted(env):
    """upstream_rq_retry_success (SPEC §5, Envoy: a retry whose response is not retried
    again) counts the retries that fixed a request."""
    good, bad = env.echo("good"), env.echo("bad", status=503)
    px = start_proxy(env, [se([good.port, bad.port]), vs(retries={"attempts": 3, "retryOn": "5xx"})])
    seen = _names(px, 40)
    assert seen == Counter({(200, "good"): 40}), dict(seen)
    stats = cluster_stats(px)
    print(f"\nretries {stats.get('upstream_rq_retry')}, retry_success "
          f"{stats.get('upstream_rq_retry_success')}")
    assert stats.get("upstream_rq_retry", 0) > 0, stats
    # Each request that needed a retry ends in exactly one successful retry; a retry may
    # still land on `bad` again (Envoy's previous-hosts predicate makes at most 5 picks and
    # then takes the last one), so successes can be fewer than retries, never more.
    retries, success = stats["upstream_rq_retry"], stats.get("upstream_rq_retry_success", 0)
    assert 0 < success <= retries, f"retry_success {success} with {retries} retries: {stats}"
    assert success >= retries * 0.7, f"most retries should succeed at once: {success} of {retries}"
    assert stats.get("upstream_rq_total", 0) == 40 + retries, stats


# ---------------------------------------------------------------------------
# 3. perTryTimeout

def test_per_try_timeout_moves_to_fast_endpoint(env):
    slow = SlowBackend("slow", delay=2.0)
    env.servers.append(slow)
    fast = env.echo("fast")
    px = start_proxy(env, [se([slow.port, fast.port]),
                           vs(timeout="3s", retries={"attempts": 2, "perTryTimeout": "300ms",
                                                     "retryOn": "reset,5xx"})])
    times, names = [], Counter()
    for _ in range(16):
        t = time.monotonic()
        r = http_request(px.port, host=HOST, timeout=10)
        times.append(time.monotonic() - t)
        names[(r.status, r.header("x-echo-name"))] += 1
    stats = cluster_stats(px)
    print(f"\nperTryTimeout 300ms: {dict(names)}; slow backend got {slow.hits}; max "
          f"{max(times) * 1000:.0f} ms; per_try_timeout {stats.get('upstream_rq_per_try_timeout')}, "
          f"retries {stats.get('upstream_rq_retry')}")
    assert names == Counter({(200, "fast"): 16}), dict(names)
    assert max(times) < 1.0, f"slowest request took {max(times):.2f}s (want well under 1.5 s)"
    assert slow.hits > 0, "no request went to the slow backend at all: nothing was tested"
    assert stats.get("upstream_rq_per_try_timeout", 0) >= slow.hits, stats
    # the tries that timed out were the slow ones: ~300 ms + backoff + a fast answer
    slow_ones = [t for t in times if t > 0.25]
    assert all(0.28 < t < 1.0 for t in slow_ones), times


# ---------------------------------------------------------------------------
# 4. route timeout

def test_route_timeout_504_ut(env):
    e = env.echo("sleepy")
    log = env.dir / "access-timeout.log"
    px = start_proxy(env, [se([e.port]), vs(timeout="300ms")], access_log=log)
    t = time.monotonic()
    r = http_request(px.port, path="/delay/3000", host=HOST, timeout=10)
    took = time.monotonic() - t
    lines = access_log_lines(log, lambda d: d.get("path") == "/delay/3000")
    stats = cluster_stats(px)
    print(f"\nroute timeout 300ms: {r.status} in {took * 1000:.0f} ms; log {lines}; "
          f"upstream_rq_timeout {stats.get('upstream_rq_timeout')}")
    assert r.status == 504, r
    assert 0.25 <= took < 0.8, f"504 after {took:.3f}s (want about 0.3 s)"
    assert lines and lines[0]["response_code"] == 504, lines
    assert "UT" in lines[0]["response_flags"].split(","), lines[0]
    assert stats.get("upstream_rq_timeout", 0) >= 1, stats
    # the proxy is fine afterwards
    assert http_request(px.port, host=HOST).status == 200


# ---------------------------------------------------------------------------
# 5. gRPC: UNAVAILABLE once, retried by the default policy (acceptance)

def test_grpc_unavailable_retried_by_default_policy(env):
    import grpc
    import grpc_peers as gp
    be = gp.start_backends(env.pm, ["adservice"])["adservice"]
    res = [harness.service_entry("adservice", "adservice", [be.port], protocol="GRPC",
                                 port_number=50051, port_name="grpc"),
           {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "adservice", "namespace": "default"},
            "spec": {"hosts": ["adservice"], "http": [{"route": [
                {"destination": {"host": "adservice", "port": {"number": 50051}}}]}]}}]
    px = start_proxy(env, res, name="remora-grpc")
    # the backend really fails the first call of a key (no proxy)
    with gp.channel(be.port) as ch:
        e = gp.rpc_error(lambda: gp.unary(ch, "FlakyOnce", json.dumps({"key": "direct"}).encode()))
        assert e.code() == grpc.StatusCode.UNAVAILABLE, e
    keys = [f"k{i}" for i in range(5)]
    with gp.channel(px.port, "adservice") as ch:
        for k in keys:
            try:
                reply, call = gp.unary(ch, "FlakyOnce", json.dumps({"key": k}).encode(), timeout=10)
            except grpc.RpcError as e:
                raise AssertionError(f"FlakyOnce {k} through the proxy failed: {e.code()} "
                                     f"{e.details()!r} (the default policy should retry "
                                     f"`unavailable`)") from None
            doc = json.loads(reply)
            assert doc["key"] == k and doc["calls"] == 2, doc
    flaky = gp.events(be.port)["flaky"]
    stats = cluster_stats(px, host="adservice")
    print(f"\ngrpc FlakyOnce: backend calls per key {flaky}; retries "
          f"{stats.get('upstream_rq_retry')}")
    assert all(flaky.get(k) == 2 for k in keys), f"backend calls per key: {flaky}"
    assert stats.get("upstream_rq_retry", 0) >= len(keys), stats


# ---------------------------------------------------------------------------
# 6. consistent hashing (acceptance)

def _user_map(px, users: list[str], per_user: int) -> dict[str, set]:
    ka = KeepAlive(px.port)
    out: dict[str, set] = {}
    try:
        for _ in range(per_user):
            for u in users:
                r = ka.get("/", [("userid", u)])
                assert r.status == 200, r
                out.setdefault(u, set()).add(r.header("x-echo-name"))
    finally:
        ka.close()
    return out


@pytest.mark.parametrize("variant", ["ringHash-default", "ringHash-1024", "maglev"])
def test_consistent_hash_header_sticky_and_minimal_disruption(env, variant):
    echos = [env.echo(f"ep{i}") for i in range(5)]
    ch: dict = {"httpHeaderName": "userid"}
    if variant == "ringHash-1024":
        ch["ringHash"] = {"minimumRingSize": 1024}
    elif variant == "maglev":
        ch["maglev"] = {}
    px = start_proxy(env, [se([e.port for e in echos[:4]]), vs(),
                           dr({"loadBalancer": {"consistentHash": ch}})])
    # 100 users x 10 requests (the acceptance's 1 000 requests); enough users that the share
    # moving to the new endpoint (expected 1/5) is not at the mercy of a few hash values
    users = [f"user-{i}" for i in range(100)]
    m1 = _user_map(px, users, 10)
    spread = [u for u, s in m1.items() if len(s) != 1]
    per_ep = Counter(next(iter(s)) for s in m1.values())
    print(f"\n{variant}: users per endpoint with 4 endpoints {dict(per_ep)}")
    assert not spread, f"users served by several endpoints: {[(u, m1[u]) for u in spread]}"
    assert len(per_ep) >= 3, f"hashing put 100 users on {dict(per_ep)}"

    put_resource(px, "serviceentries", se([e.port for e in echos]))
    m2 = _user_map(px, users, 2)
    spread = [u for u, s in m2.items() if len(s) != 1]
    assert not spread, f"after the 5th endpoint: {[(u, m2[u]) for u in spread]}"
    moved = [u for u in users if m1[u] != m2[u]]
    to_new = [u for u in moved if m2[u] == {"ep4"}]
    frac = len(moved) / len(users)
    print(f"{variant}: 5th endpoint added: {len(moved)}/{len(users)} users moved ({frac:.0%}), "
          f"{len(to_new)} of them to the new endpoint; now {dict(Counter(next(iter(s)) for s in m2.values()))}")
    assert 0.05 <= frac <= 0.45 and len(to_new) == len(moved), (
        f"{frac:.0%} of users moved when a 5th endpoint was added ({len(to_new)} of them to it)")


def test_consistent_hash_variants_accepted(env):
    """The ringHash/maglev spellings validate (so the variants above mean something)."""
    res = env.dir / "ch.yaml"
    docs = [se([free_port()]),
            dr({"loadBalancer": {"consistentHash": {"httpHeaderName": "userid",
                                                    "maglev": {"tableSize": 65537}}}}, name="a"),
            dr({"loadBalancer": {"consistentHash": {"httpCookie": {"name": "u", "ttl": "0s"},
                                                    "ringHash": {"minimumRingSize": 1024}}}},
               name="b", host="other.local"),
            dr({"loadBalancer": {"consistentHash": {"useSourceIp": True}}}, name="c", host="c.local"),
            dr({"loadBalancer": {"consistentHash": {"httpQueryParameterName": "u"}}}, name="d",
               host="d.local")]
    res.write_text(harness.documents_yaml(docs))
    p = env.run("validate", "-c", res)
    assert p.returncode == 0, p.stdout + p.stderr


# ---------------------------------------------------------------------------
# 7. outlier ejection visible

def test_outlier_ejection_stops_traffic_for_ejection_time(env):
    good, bad = env.echo("good"), env.echo("bad", status=503)
    od = {"consecutive5xxErrors": 2, "interval": "500ms", "baseEjectionTime": "3s",
          "maxEjectionPercent": 100}
    px = start_proxy(env, [se([good.port, bad.port]), vs(retries={"attempts": 0}),
                           dr({"outlierDetection": od})])
    ka = KeepAlive(px.port)
    try:
        # until `bad` has answered twice in a row (then it must be ejected)
        bad_seen, t_last_bad, n = 0, None, 0
        while bad_seen < 2 and n < 200:
            r = ka.get("/")
            n += 1
            if r.header("x-echo-name") == "bad":
                assert r.status == 503, r
                bad_seen += 1
                t_last_bad = time.monotonic()
        assert bad_seen == 2, f"`bad` got {bad_seen} of {n} requests"
        # ejected: nothing reaches `bad` for (about) baseEjectionTime
        during = Counter()
        while time.monotonic() < t_last_bad + 2.5:
            r = ka.get("/")
            during[(r.status, r.header("x-echo-name"))] += 1
            time.sleep(0.01)
        print(f"\nejected: {sum(during.values())} requests in 2.5 s: {dict(during)}")
        assert set(during) == {(200, "good")}, f"while `bad` is ejected: {dict(during)}"
        # back after baseEjectionTime (checked on the interval ticks)
        back_at = None
        while time.monotonic() < t_last_bad + 3.0 + 0.5 + 2.5:
            if ka.get("/").header("x-echo-name") == "bad":
                back_at = time.monotonic() - t_last_bad
                break
            time.sleep(0.01)
        print(f"`bad` got traffic again {back_at and round(back_at, 2)} s after its ejection")
        assert back_at is not None, "`bad` never came back after baseEjectionTime 3s"
        assert back_at >= 2.9, f"`bad` back after {back_at:.2f}s, before baseEjectionTime 3s"
    finally:
        ka.close()


def test_outlier_ejection_visible_in_metrics_and_clusters(env):
    """SPEC §4/§5: an ejection shows in outlier_detection_ejections_active /
    _enforced_total and in the admin `GET /clusters` (endpoint health / outlier state)."""
    good, bad = env.echo("good"), env.echo("bad", status=503)
    od = {"consecutive5xxErrors": 2, "interval": "500ms", "baseEjectionTime": "30s",
          "maxEjectionPercent": 100}
    px = start_proxy(env, [se([good.port, bad.port]), vs(retries={"attempts": 0}),
                           dr({"outlierDetection": od})])
    seen = _names(px, 40)
    assert seen[(503, "bad")] == 2, f"`bad` should get exactly 2 requests, then be ejected: {dict(seen)}"
    time.sleep(0.6)  # one interval, for anything updated on the sweep
    stats = cluster_stats(px)
    st, body = admin(px, "GET", "/clusters")
    assert st == 200, body
    eps = [ep for c in json.loads(body)["clusters"] if c["host"] == HOST for ep in c["endpoints"]]
    bad_ep = [ep for ep in eps if str(ep.get("address", "")).endswith(f":{bad.port}")]
    print(f"\nafter ejection: outlier stats "
          f"{ {k: v for k, v in stats.items() if 'outlier' in k} }; /clusters endpoints {eps}")
    problems = []
    if stats.get("outlier_detection_ejections_active", 0) != 1:
        problems.append(f"outlier_detection_ejections_active is "
                        f"{stats.get('outlier_detection_ejections_active')} (want 1)")
    if stats.get("outlier_detection_ejections_enforced_total", 0) < 1:
        problems.append(f"outlier_detection_ejections_enforced_total is "
                        f"{stats.get('outlier_detection_ejections_enforced_total')} (want >= 1)")
    if not bad_ep or (bad_ep[0].get("health") == "HEALTHY"
                      and "eject" not in json.dumps(bad_ep[0]).lower()):
        problems.append(f"GET /clusters shows the ejected endpoint as {bad_ep} (want it marked "
                        f"ejected / not HEALTHY)")
    assert not problems, ("`bad` is ejected (it gets no traffic) but that is not visible: "
                          + "; ".join(problems))


# ---------------------------------------------------------------------------
# 8. circuit breaking (acceptance)

@pytest.mark.parametrize("workers", [1, 2])
def test_circuit_breaking_overflow_503_uo(env, workers):
    """With 2 workers the connection, the pending request and the idle connection left by
    the first request may sit on different workers: the limits are per cluster."""
    e = env.echo("cb")
    log = env.dir / f"access-cb-{workers}.log"
    pool = {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}
    px = start_proxy(env, [se([e.port]), vs(), dr({"connectionPool": pool})], access_log=log, workers=workers)
    assert http_request(px.port, host=HOST).status == 200
    results: list = [None] * 12
    barrier = threading.Barrier(12)

    def one(i):
        barrier.wait()
        t = time.monotonic()
        try:
            r = http_request(px.port, path="/delay/1000", host=HOST, timeout=10)
            results[i] = (r.status, time.monotonic() - t, r.header("x-remora-overloaded"))
        except Exception as ex:  # noqa: BLE001
            results[i] = ("error", time.monotonic() - t, repr(ex))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    stats = cluster_stats(px)
    ok = sorted(r[1] for r in results if r and r[0] == 200)
    fast_overflow = [r for r in results if r and r[0] == 503 and r[1] < 0.2 and r[2] == "true"]
    flags = Counter(d.get("response_flags") for d in
                    access_log_lines(log, lambda d: d.get("path") == "/delay/1000", count=12))
    print(f"\ncircuit breaking: {sorted((r[0], round(r[1], 2), r[2]) for r in results)}; "
          f"pending_overflow {stats.get('upstream_rq_pending_overflow')}, cx_overflow "
          f"{stats.get('upstream_cx_overflow')}; access-log flags {dict(flags)}")
    # Envoy's semantics: one request has the connection, one waits for it as pending (and
    # succeeds after the first, ~2 s in all), the other ten overflow at once.
    assert len(fast_overflow) == 10 and len(ok) == 2 and ok[1] >= 1.8, (
        "circuit breaking (DestinationRule connectionPool maxConnections 1, "
        "http1MaxPendingRequests 1) is not enforced: of 12 concurrent /delay/1000 requests "
        f"{len(ok)} got 200 (after {ok} s) and {len(fast_overflow)} got an immediate 503 with "
        f"x-remora-overloaded: true (want 10 such 503s, and 2 successes, the second one queued "
        f"behind the first); results {sorted((r[0], round(r[1], 2), r[2]) for r in results)}")
    # upstream_cx_overflow counts every request that found the connection taken: 11, or 12
    # when the first request served had itself waited (with 2 workers the idle connection left
    # by the warm-up request may be on the other worker, closed to free its slot).
    assert stats.get("upstream_rq_pending_overflow") == 10 and stats.get("upstream_cx_overflow") in (11, 12), (
        f"counters: upstream_rq_pending_overflow {stats.get('upstream_rq_pending_overflow')} (want 10: the "
        f"503s), upstream_cx_overflow {stats.get('upstream_cx_overflow')} (want 11 or 12: every request "
        f"that found the connection taken)")
    assert flags.get("UO", 0) == 10 and flags.get("-", 0) == 2, f"access-log flags of the 12 requests: {dict(flags)}"
