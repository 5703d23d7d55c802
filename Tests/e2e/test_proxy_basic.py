"""Plain HTTP/1.1 proxying through the mesh outbound listener (SPEC §6): headers the
proxy adds and removes, routing by authority (404), upstream errors (502, 504),
pipelining, keep-alive, configuration from a directory."""
import time

import harness
from harness import RawConn, echo_headers, http_request


def test_get_through_proxy(env):
    e = env.echo(name="b1")
    px = env.proxy({"backend.local": e.port})
    r = http_request(px.port, "GET", "/hello?q=1", host="backend.local",
                     headers=[("User-Agent", "e2e")])
    assert r.status == 200, r
    assert r.header("x-echo-name") == "b1", r.headers
    doc = r.json()
    assert doc["path"].startswith("/hello"), doc
    h = echo_headers(doc)
    rid = h.get("x-request-id", "")
    assert len(rid) >= 8, f"backend saw no x-request-id: {h}"
    assert "127.0.0.1" in h.get("x-forwarded-for", ""), f"x-forwarded-for: {h}"
    assert h.get("x-forwarded-proto") == "http", f"x-forwarded-proto: {h}"
    assert h.get("user-agent") == "e2e", h

    # a second request gets a different id
    r2 = http_request(px.port, "GET", "/", host="backend.local")
    assert echo_headers(r2.json()).get("x-request-id") not in (None, rid)


def test_request_id_kept_if_present(env):
    e = env.echo()
    px = env.proxy({"backend.local": e.port})
    r = http_request(px.port, "GET", "/", host="backend.local",
                     headers=[("X-Request-Id", "my-own-request-id-42")])
    assert r.status == 200, r
    assert echo_headers(r.json()).get("x-request-id") == "my-own-request-id-42"


def test_hop_by_hop_headers_not_forwarded(env):
    rec = env.recording_backend()
    px = env.proxy({"backend.local": rec.port})
    c = RawConn(px.port)
    try:
        c.send(b"GET /hop HTTP/1.1\r\nHost: backend.local\r\n"
               b"Connection: foo\r\n"
               b"Foo: must-not-pass\r\n"
               b"Keep-Alive: timeout=5\r\n"
               b"Proxy-Connection: keep-alive\r\n"
               b"X-Custom: passes\r\n"
               b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
               b"b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1\r\n"
               b"baggage: k=v\r\n\r\n")
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200, r
    assert rec.wait_for(1)
    got = rec.requests[0]
    names = {k.lower() for k, _ in got.headers}
    assert "foo" not in names, f"header named in Connection was forwarded: {got.headers}"
    assert "keep-alive" not in names, got.headers
    assert "proxy-connection" not in names, got.headers
    conn = (got.header("connection") or "").lower()
    assert "foo" not in conn, f"Connection tokens forwarded: {conn!r}"
    assert got.header("x-custom") == "passes", got.headers
    assert got.header("traceparent") == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert got.header("b3") == "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"
    assert got.header("baggage") == "k=v"


def test_unrouted_authority_404(env):
    e = env.echo(name="only")
    px = env.proxy({"backend.local": e.port},
                   routes=[("only", ["backend.local"], "backend.local", None)])
    ok = http_request(px.port, "GET", "/", host="backend.local")
    assert ok.status == 200 and ok.header("x-echo-name") == "only", ok
    r = http_request(px.port, "GET", "/", host="other.local")
    assert r.status == 404, r
    assert r.header("x-echo-name") is None, "404 must come from the proxy, not the backend"


def test_routing_by_authority(env):
    a = env.echo(name="A")
    b = env.echo(name="B")
    px = env.proxy({"a.local": a.port, "b.local": b.port},
                   routes=[("ra", ["a.local"], "a.local", None),
                           ("rb", ["b.local"], "b.local", None)])
    for host, name in (("a.local", "A"), ("b.local", "B"), ("a.local", "A")):
        r = http_request(px.port, "GET", "/", host=host)
        assert r.status == 200 and r.header("x-echo-name") == name, (host, r)


def test_connect_failure_502(env):
    dead = harness.free_port()  # nothing listens here
    px = env.proxy({"backend.local": dead})
    t0 = time.monotonic()
    r = http_request(px.port, "GET", "/", host="backend.local")
    assert r.status == 502, r
    assert time.monotonic() - t0 < 5
    assert px.proc.alive()


def test_route_timeout_504(env):
    e = env.echo()
    px = env.proxy({"backend.local": e.port}, timeout="200ms")
    ok = http_request(px.port, "GET", "/delay/10", host="backend.local")
    assert ok.status == 200, ok
    t0 = time.monotonic()
    r = http_request(px.port, "GET", "/delay/2000", host="backend.local")
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert 0.15 <= took < 1.5, f"504 after {took:.3f}s with a 200ms route timeout"


def test_pipelined_requests_answered_in_order(env):
    e = env.echo()
    px = env.proxy({"backend.local": e.port})
    c = RawConn(px.port)
    try:
        # the first is the slowest: a proxy that answers out of order fails here
        c.send(b"GET /delay/300 HTTP/1.1\r\nHost: backend.local\r\n\r\n"
               b"GET /bytes/5 HTTP/1.1\r\nHost: backend.local\r\n\r\n"
               b"GET /third HTTP/1.1\r\nHost: backend.local\r\n\r\n")
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
    finally:
        c.close()
    assert r1.status == 200 and r1.json()["path"] == "/delay/300", r1
    assert r2.status == 200 and len(r2.body) == 5, r2
    assert r3.status == 200 and r3.json()["path"] == "/third", r3


def test_keepalive_connection_reused(env):
    e = env.echo()
    px = env.proxy({"backend.local": e.port})
    c = RawConn(px.port)
    try:
        for i in range(20):
            c.send(f"GET /k{i} HTTP/1.1\r\nHost: backend.local\r\n\r\n".encode())
            r = c.read_response()
            assert r.status == 200 and r.json()["path"] == f"/k{i}", r
    finally:
        c.close()


def test_config_from_directory(env):
    e = env.echo(name="dir")
    docs, ports = env.proxy_docs({"backend.local": e.port})
    d = env.dir / "confdir"
    d.mkdir()
    (d / "00-proxy.yaml").write_text(harness.documents_yaml(docs[:1]))
    (d / "10-routes.yml").write_text(harness.documents_yaml(docs[1:]))
    px = env.run_proxy([d], ports)
    r = http_request(px.port, "GET", "/", host="backend.local")
    assert r.status == 200 and r.header("x-echo-name") == "dir", r
