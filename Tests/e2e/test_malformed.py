"""Malformed requests on a raw socket (SPEC §6): answered 400 (431 for oversized
headers), the connection closed, and nothing forwarded to the backend (request
smuggling). One proxy and one recording backend serve the whole module."""
import time

import pytest

from harness import ConnectionClosed, RawConn, http_request

H = b"Host: backend.local\r\n"

# name -> (raw request bytes, accepted statuses)
CASES = {
    # RFC 9112 §6.3: both framings -> the request is ambiguous; the smuggled second
    # request hidden in the body must never reach the backend.
    "content-length-and-transfer-encoding": (
        b"POST /cl-te HTTP/1.1\r\n" + H + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n", {400}),
    "transfer-encoding-and-content-length": (
        b"POST /te-cl HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n", {400}),
    "conflicting-content-lengths": (
        b"POST /cl-cl HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", {400}),
    "non-numeric-content-length": (
        b"POST /cl HTTP/1.1\r\n" + H + b"Content-Length: 5x\r\n\r\nhello", {400}),
    "unknown-transfer-encoding": (
        b"POST /te HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nhello", {400, 501}),
    "obs-fold": (
        b"GET /fold HTTP/1.1\r\n" + H + b"X-Folded: first\r\n  continued\r\n\r\n", {400}),
    "bare-lf-in-header-section": (
        b"GET /lf HTTP/1.1\r\n" + H + b"X-A: a\nX-B: b\r\n\r\n", {400}),
    "bare-lf-only": (
        b"GET /lf-only HTTP/1.1\nHost: backend.local\nX-A: a\n\n", {400}),
    "space-in-header-name": (
        b"GET /name HTTP/1.1\r\n" + H + b"Bad Header: x\r\n\r\n", {400}),
    "space-before-colon": (
        b"GET /colon HTTP/1.1\r\n" + H + b"X-Spaced : x\r\n\r\n", {400}),
    "control-char-in-header-name": (
        b"GET /ctl HTTP/1.1\r\n" + H + b"X-\x01Bad: x\r\n\r\n", {400}),
    "missing-host": (
        b"GET /nohost HTTP/1.1\r\nX-A: a\r\n\r\n", {400}),
    "oversize-headers": (
        b"GET /big HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n", {431}),
    "too-many-headers": (
        b"GET /many HTTP/1.1\r\n" + H + b"".join(b"X-H-%d: v\r\n" % i for i in range(150)) + b"\r\n",
        {400, 431}),
    "invalid-chunk-size": (
        b"POST /chunk HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        {400}),
}


@pytest.fixture(scope="module")
def setup(module_env):
    rec = module_env.recording_backend()
    px = module_env.proxy({"backend.local": rec.port})
    return px, rec


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_request_rejected(setup, name):
    px, rec = setup
    raw, statuses = CASES[name]
    rec.reset()
    c = RawConn(px.port, timeout=5)
    try:
        c.send(raw)
        try:
            r = c.read_response()
        except ConnectionClosed as e:
            pytest.fail(f"{name}: connection closed without a response ({e})")
        except TimeoutError:
            pytest.fail(f"{name}: no response within 5 s (the proxy kept waiting for input)")
        assert r.status in statuses, f"{name}: expected {sorted(statuses)}, got {r.status} {r.reason}"
        assert r.header("x-backend-name") is None, f"{name}: the backend answered"
        assert c.closed_within(3), f"{name}: connection not closed after the {r.status}"
    finally:
        c.close()
    time.sleep(0.2)
    assert rec.heads_seen == 0 or name == "invalid-chunk-size", \
        f"{name}: the backend saw {rec.heads_seen} request(s)"
    assert not rec.requests, \
        f"{name}: backend received {[q.target for q in rec.requests]}"
    # the proxy keeps serving
    ok = http_request(px.port, "GET", "/after", host="backend.local")
    assert ok.status == 200 and ok.header("x-backend-name") == "recorder", ok


def test_valid_request_still_fine(setup):
    """Control: the same proxy and backend serve a well-formed request."""
    px, rec = setup
    rec.reset()
    c = RawConn(px.port)
    try:
        c.send(b"POST /good HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n0\r\n\r\n")
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200, r
    assert rec.wait_for(1) and rec.requests[0].target == "/good"
    assert rec.requests[0].body_prefix == b"hello"
