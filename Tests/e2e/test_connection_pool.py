"""Upstream connection lifetime and pending requests (issue 8), DestinationRule
`connectionPool`, through the real binary:

- `http.maxRequestsPerConnection`: an HTTP/1.1 upstream connection carries at most N
  requests (counted at the backend as accepted connections), the same for HTTP/2 streams
  (counted by a relay in front of an h2c `remora echo`);
- `http.idleTimeout`: a pooled connection idle that long is closed (the next request opens
  a new one; without it, the same connection is reused);
- `tcp.maxConnectionDuration`: connections are replaced once that old, without a failed request;
- a pending request (over `tcp.maxConnections`, within `http1MaxPendingRequests`) that
  waits past the route timeout gets 504 `UT`, and gives its pending slot back.

Cluster counters come from the metrics port, like test_resilience.
"""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import pytest

from backends import RecordingBackend
from harness import http_request
from test_resilience import HOST, access_log_lines, cluster_stats, dr, se, start_proxy, vs


def _proxy_to(env, backend_port: int, pool: dict | None, protocol: str = "HTTP", timeout: str | None = None,
              access_log=None):
    resources = [se([backend_port]), vs(timeout=timeout)]
    if protocol != "HTTP":
        resources[0]["spec"]["ports"][0]["protocol"] = protocol
    if pool is not None:
        resources.append(dr({"connectionPool": pool}))
    return start_proxy(env, resources, access_log=access_log)


def _get(px, path: str = "/", timeout: float = 10):
    return http_request(px.port, "GET", path, host=HOST, timeout=timeout)


@pytest.fixture
def recorder():
    b = RecordingBackend("pool")
    yield b
    b.stop()


class CountingRelay:
    """Accepts TCP connections, counts them, and pipes each to `target_port` (a transparent
    relay in front of a backend whose connections a test wants to count)."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.accepted = 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.accepted += 1
            u = socket.create_connection(("127.0.0.1", self.target))
            self._socks += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.lsock.close()
        for s in self._socks:
            s.close()


@pytest.mark.parametrize("limit,requests,connections", [(None, 6, 1), (2, 6, 3), (1, 4, 4)])
def test_http1_max_requests_per_connection(env, recorder, limit, requests, connections):
    pool = {"http": {"maxRequestsPerConnection": limit}} if limit else None
    px = _proxy_to(env, recorder.port, pool)
    for i in range(requests):
        r = _get(px, f"/r{i}")
        assert r.status == 200, r
    assert recorder.connections_accepted == connections, (
        f"maxRequestsPerConnection {limit}: {requests} sequential requests used "
        f"{recorder.connections_accepted} upstream connections (want {connections})")


def test_http2_max_requests_per_connection(env):
    e = env.echo("h2-pool")
    relay = CountingRelay(e.port)
    try:
        px = _proxy_to(env, relay.port, {"http": {"maxRequestsPerConnection": 3}}, protocol="HTTP2")
        for i in range(9):
            r = _get(px, f"/h2-{i}")
            assert r.status == 200 and r.header("x-echo-name") == "h2-pool", r
        assert relay.accepted == 3, f"9 requests over h2c with maxRequestsPerConnection 3 used {relay.accepted} connections"
    finally:
        relay.stop()


@pytest.mark.parametrize("idle,connections", [(None, 1), ("300ms", 2)])
def test_http_idle_timeout_closes_pooled_connection(env, recorder, idle, connections):
    px = _proxy_to(env, recorder.port, {"http": {"idleTimeout": idle}} if idle else None)
    assert _get(px, "/a").status == 200
    time.sleep(1.0)
    assert _get(px, "/b").status == 200
    assert recorder.connections_accepted == connections, (
        f"http.idleTimeout {idle}: two requests 1 s apart used {recorder.connections_accepted} "
        f"upstream connections (want {connections})")


def test_max_connection_duration_replaces_connections(env, recorder):
    px = _proxy_to(env, recorder.port, {"tcp": {"maxConnectionDuration": "500ms"}})
    statuses = []
    t_end = time.monotonic() + 1.8
    while time.monotonic() < t_end:
        statuses.append(_get(px, "/d").status)
        time.sleep(0.05)
    assert set(statuses) == {200}, statuses
    assert 3 <= recorder.connections_accepted <= 6, (
        f"{len(statuses)} requests over 1.8 s with maxConnectionDuration 500ms used "
        f"{recorder.connections_accepted} upstream connections (want about 4)")


def _breaker(px) -> dict:
    """The cluster's circuit-breaker counts from the admin API's /clusters."""
    with urllib.request.urlopen(f"http://127.0.0.1:{px.ports['admin']}/clusters", timeout=5) as r:
        doc = json.loads(r.read())
    return next(c for c in doc["clusters"] if c["host"] == HOST)["circuitBreakers"]


def test_pending_request_times_out_504_and_frees_its_slot(env):
    e = env.echo("pending")
    log = env.dir / "access-pending.log"
    pool = {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}
    px = _proxy_to(env, e.port, pool, timeout="1500ms", access_log=log)
    results = {}

    def one(name, path):
        t = time.monotonic()
        r = _get(px, path)
        results[name] = (r.status, round(time.monotonic() - t, 2))

    first = threading.Thread(target=one, args=("active", "/delay/1000"))
    first.start()
    time.sleep(0.2)
    second = threading.Thread(target=one, args=("pending", "/delay/1000"))
    second.start()
    first.join(10)
    second.join(10)
    # the pending one waited 1 s for the connection, then would need 1 s more: the 1.5 s
    # route timeout ends it while it is upstream or still queued
    assert results["active"][0] == 200, results
    assert results["pending"][0] == 504 and 1.3 <= results["pending"][1] <= 2.5, results
    lines = access_log_lines(log, lambda d: d.get("response_code") == 504)
    assert lines and "UT" in lines[0]["response_flags"], lines
    # nothing is left counted as pending, and a third request goes straight through
    assert _breaker(px)["pendingRequests"] == 0, _breaker(px)
    assert _get(px, "/after").status == 200


def test_pending_request_queued_then_abandoned_by_client(env):
    """A client that gives up while its request is queued leaves nothing behind: the
    pending count returns to 0, so the next requests are not refused."""
    e = env.echo("abandon")
    pool = {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}
    px = _proxy_to(env, e.port, pool)
    first = threading.Thread(target=lambda: _get(px, "/delay/1500"))
    first.start()
    time.sleep(0.2)
    s = socket.create_connection(("127.0.0.1", px.port))
    s.sendall(f"GET /delay/100 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    time.sleep(0.3)
    queued = _breaker(px)
    gauges = cluster_stats(px)
    assert gauges.get("upstream_rq_pending_active") == 1 and gauges.get("upstream_cx_active") == 1, gauges
    s.close()   # queued behind the first request: abandoned
    time.sleep(0.2)
    left = _breaker(px)
    first.join(10)
    assert queued["pendingRequests"] == 1 and left["pendingRequests"] == 0, (queued, left)
    statuses = [_get(px, f"/next{i}").status for i in range(3)]
    assert statuses == [200, 200, 200], statuses
