"""`remora echo` on its own (SPEC §7): default reply, /status, /bytes, /delay, --status,
request bodies counted."""
import time

from harness import RawConn, echo_headers, http_request


def test_default_reply(env):
    e = env.echo(name="alpha")
    r = http_request(e.port, "GET", "/some/path?x=1", host="whatever.local",
                     headers=[("X-Test-Header", "hello")])
    assert r.status == 200, r
    assert r.header("x-echo-name") == "alpha", r.headers
    doc = r.json()
    assert doc["name"] == "alpha"
    assert doc["method"] == "GET"
    assert doc["path"].startswith("/some/path"), doc
    assert "1.1" in str(doc["protocol"]), doc
    h = echo_headers(doc)
    assert h.get("x-test-header") == "hello", h
    assert doc["bodyBytes"] == 0, doc


def test_body_is_counted(env):
    e = env.echo()
    body = bytes(range(256)) * 1000
    r = http_request(e.port, "POST", "/upload", body=body)
    assert r.status == 200, r
    assert r.json()["bodyBytes"] == len(body)
    assert r.json()["method"] == "POST"


def test_status_path(env):
    e = env.echo()
    for code in (201, 404, 418, 503):
        r = http_request(e.port, "GET", f"/status/{code}")
        assert r.status == code, r


def test_bytes_path(env):
    e = env.echo()
    for n in (0, 1, 12345, 1_000_000):
        r = http_request(e.port, "GET", f"/bytes/{n}")
        assert r.status == 200, r
        assert len(r.body) == n, (n, len(r.body))


def test_delay_path(env):
    e = env.echo(name="slow")
    t0 = time.monotonic()
    r = http_request(e.port, "GET", "/delay/400")
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert took >= 0.38, f"/delay/400 answered after {took:.3f}s"
    assert took < 5, f"/delay/400 answered after {took:.3f}s"
    assert r.json()["name"] == "slow"


def test_status_flag(env):
    e = env.echo(name="failing", status=503)
    r = http_request(e.port, "GET", "/")
    assert r.status == 503, r
    assert r.header("x-echo-name") == "failing"


def test_keepalive_and_pipelining(env):
    e = env.echo()
    c = RawConn(e.port)
    try:
        c.send(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n")
        a = c.read_response()
        b = c.read_response()
        assert a.json()["path"] == "/one" and b.json()["path"] == "/two"
    finally:
        c.close()
