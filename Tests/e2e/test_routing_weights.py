"""Weighted destinations and subsets (Istio `route[].weight`, `destination.subset` with a
DestinationRule over labelled ServiceEntry endpoints), end to end through the binary.
Who served each request is read from `remora echo`'s `x-echo-name`."""
from __future__ import annotations

import collections
import threading

import harness
from harness import RawConn, free_port, http_request

N_REQUESTS = 2000
N_CONNS = 4


def _ports() -> dict:
    return {k: free_port() for k in ("listen", "admin", "health", "metrics")}


def _proxy_doc(ports):
    return harness.proxy_resource(ports["listen"], ports["admin"], ports["health"], ports["metrics"])


def _keepalive_names(port: int, host: str, n: int, headers=()) -> list[str]:
    """n GETs on one keep-alive connection (reopened if the proxy closes it)."""
    names: list[str] = []
    c = RawConn(port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    req = f"GET /w HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
    try:
        while len(names) < n:
            c.send(req)
            r = c.read_response()
            assert r.status == 200, r
            names.append(r.header("x-echo-name"))
            if (r.header("connection") or "").lower() == "close":
                c.close()
                c = RawConn(port)
    finally:
        c.close()
    return names


def test_weighted_split_80_20(env):
    a, b = env.echo(name="a"), env.echo(name="b")
    ports = _ports()
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "split", "namespace": "default"},
          "spec": {"hosts": ["split.local"], "http": [{"route": [
              {"destination": {"host": "a.local", "port": {"number": 80}}, "weight": 80},
              {"destination": {"host": "b.local", "port": {"number": 80}}, "weight": 20}]}]}}
    docs = [_proxy_doc(ports), harness.service_entry("a", "a.local", [a.port]),
            harness.service_entry("b", "b.local", [b.port]), vs]
    env.run_proxy([env.write(docs, "weights.yaml")], ports)

    results: list[list[str]] = [[] for _ in range(N_CONNS)]
    errors: list[BaseException] = []

    def worker(i):
        try:
            results[i] = _keepalive_names(ports["listen"], "split.local", N_REQUESTS // N_CONNS)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N_CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, f"requests failed: {errors[0]!r}"
    counts = collections.Counter(n for r in results for n in r)
    total = sum(counts.values())
    assert total == N_REQUESTS, counts
    assert set(counts) <= {"a", "b"}, counts
    share_a = 100.0 * counts["a"] / total
    assert 75.0 <= share_a <= 85.0, f"weight 80/20: got a={counts['a']} b={counts['b']} ({share_a:.1f}% to a)"


def test_subsets_by_labels(env):
    v1, v2 = env.echo(name="v1"), env.echo(name="v2")
    ports = _ports()
    se = {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
          "metadata": {"name": "reviews", "namespace": "default"},
          "spec": {"hosts": ["reviews.local"],
                   "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                   "resolution": "STATIC",
                   "endpoints": [
                       {"address": "127.0.0.1", "ports": {"http": v1.port}, "labels": {"version": "v1"}},
                       {"address": "127.0.0.1", "ports": {"http": v2.port}, "labels": {"version": "v2"}}]}}
    dr = harness.destination_rule("reviews", "reviews.local", {"v1": {"version": "v1"}, "v2": {"version": "v2"}})
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "reviews", "namespace": "default"},
          "spec": {"hosts": ["reviews.local"], "http": [
              {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
               "route": [{"destination": {"host": "reviews.local", "subset": "v2"}}]},
              {"route": [{"destination": {"host": "reviews.local", "subset": "v1"}}]}]}}
    docs = [_proxy_doc(ports), se, dr, vs]
    env.run_proxy([env.write(docs, "subsets.yaml")], ports)

    # without the subsets the two endpoints would share the traffic; with them, never
    default = _keepalive_names(ports["listen"], "reviews.local", 40)
    jason = _keepalive_names(ports["listen"], "reviews.local", 40, headers=[("end-user", "jason")])
    assert collections.Counter(default) == {"v1": 40}, collections.Counter(default)
    assert collections.Counter(jason) == {"v2": 40}, collections.Counter(jason)
    # and on fresh connections too
    for _ in range(5):
        assert http_request(ports["listen"], host="reviews.local").header("x-echo-name") == "v1"
        assert http_request(ports["listen"], host="reviews.local",
                            headers=[("end-user", "jason")]).header("x-echo-name") == "v2"
