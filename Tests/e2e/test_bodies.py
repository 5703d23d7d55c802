"""Request and response bodies through the proxy: a 5 MiB upload (chunked and with
Content-Length) arriving whole, a 3 MB response received whole, Expect: 100-continue."""
import hashlib
import json
import os
import time

import pytest

from harness import RawConn, curl

SIZE = 5 * 1024 * 1024


@pytest.fixture
def upload_file(tmp_path):
    data = os.urandom(SIZE)
    p = tmp_path / "upload.bin"
    p.write_bytes(data)
    return p, hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_5mib_upload_arrives_whole_at_python_backend(env, upload_file, framing):
    path, digest = upload_file
    rec = env.recording_backend()
    px = env.proxy({"backend.local": rec.port})
    extra = ["-H", "Transfer-Encoding: chunked"] if framing == "chunked" else []
    r = curl("--max-time", "60", "-H", "Host: backend.local", "-H", "Expect:", *extra,
             "--data-binary", f"@{path}", "-w", "\n%{http_code}", px.url("/upload"))
    assert r.returncode == 0, f"curl rc={r.returncode} {r.stderr.decode()}"
    body, _, code = r.stdout.rpartition(b"\n")
    assert code == b"200", r.stdout[-500:]
    doc = json.loads(body)
    assert doc["bodyBytes"] == SIZE, f"backend got {doc['bodyBytes']} of {SIZE} bytes"
    assert doc["sha256"] == digest, "body arrived altered"
    assert rec.wait_for(1)
    assert len(rec.requests) == 1 and rec.requests[0].method == "POST"


def test_5mib_chunked_upload_counted_by_echo(env, upload_file):
    path, _ = upload_file
    e = env.echo()
    px = env.proxy({"backend.local": e.port})
    r = curl("--max-time", "60", "-H", "Host: backend.local", "-H", "Expect:",
             "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{path}",
             "-w", "\n%{http_code}", px.url("/upload"))
    assert r.returncode == 0, f"curl rc={r.returncode} {r.stderr.decode()}"
    body, _, code = r.stdout.rpartition(b"\n")
    assert code == b"200", r.stdout[-500:]
    assert json.loads(body)["bodyBytes"] == SIZE


def test_3mb_response_received_whole(env, tmp_path):
    e = env.echo()
    px = env.proxy({"backend.local": e.port})
    out = tmp_path / "down.bin"
    r = curl("--max-time", "60", "-H", "Host: backend.local", "-o", out,
             "-w", "%{http_code} %{size_download}", px.url("/bytes/3000000"))
    assert r.returncode == 0, f"curl rc={r.returncode} {r.stderr.decode()}"
    assert r.stdout.decode().split() == ["200", "3000000"], r.stdout
    assert out.stat().st_size == 3_000_000


def test_expect_100_continue_with_curl(env, tmp_path):
    e = env.echo()
    px = env.proxy({"backend.local": e.port})
    p = tmp_path / "body.bin"
    p.write_bytes(os.urandom(1024 * 1024))
    t0 = time.monotonic()
    # curl waits --expect100-timeout for the 100 before sending anyway: 10 s makes a
    # proxy that never answers the Expect visible as a slow request.
    r = curl("-v", "--max-time", "60", "--expect100-timeout", "10", "-H", "Host: backend.local",
             "-H", "Expect: 100-continue", "--data-binary", f"@{p}", "-w", "\n%{http_code}",
             px.url("/expect"))
    took = time.monotonic() - t0
    assert r.returncode == 0, f"curl rc={r.returncode} {r.stderr.decode()[-2000:]}"
    body, _, code = r.stdout.rpartition(b"\n")
    assert code == b"200", r.stdout[-500:]
    assert json.loads(body)["bodyBytes"] == 1024 * 1024
    assert b"HTTP/1.1 100 Continue" in r.stderr, "curl never saw a 100 Continue"
    assert took < 5, f"upload took {took:.1f}s: the 100 Continue did not come promptly"


def test_expect_100_continue_answered_by_proxy(env):
    # The Python backend never sends 100 Continue: the proxy must answer it itself.
    rec = env.recording_backend()
    px = env.proxy({"backend.local": rec.port})
    c = RawConn(px.port, timeout=5)
    try:
        c.send(b"POST /e HTTP/1.1\r\nHost: backend.local\r\nContent-Length: 11\r\n"
               b"Expect: 100-continue\r\n\r\n")
        try:
            interim = c.read_response(allow_1xx=True)
        except TimeoutError:
            pytest.fail("no 100 Continue within 5 s of a request head with Expect: 100-continue")
        assert interim.status == 100, f"expected 100 Continue before the body, got {interim}"
        c.send(b"hello world")
        final = c.read_response()
    finally:
        c.close()
    assert final.status == 200, final
    assert final.json()["bodyBytes"] == 11
    assert rec.wait_for(1)
    assert rec.requests[0].body_prefix == b"hello world"
