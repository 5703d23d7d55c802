"""`remora echo` on its own (SPEC §7): default reply, /status, /bytes, /delay, --status,
request bodies counted; HTTP/1.1 and h2c (prior knowledge) on the same port."""
import json
import re
import shutil
import time

import pytest

from harness import RawConn, curl, echo_headers, http_request, rss_kb


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


# ---------------------------------------------------------------------------
# h2c (prior knowledge) on the same port

def h2_get(port: int, path: str, *args) -> tuple[int, dict, bytes]:
    """curl --http2-prior-knowledge: (status, response headers, body)."""
    r = curl("--http2-prior-knowledge", "-D", "-", *args, f"http://127.0.0.1:{port}{path}", timeout=60)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/2 "), lines[0]
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return status, headers, body


def test_h2c_default_reply(env):
    e = env.echo(name="alpha")
    status, headers, body = h2_get(e.port, "/some/path?x=1", "-H", "X-Test-Header: hello")
    assert status == 200
    assert headers.get("x-echo-name") == "alpha", headers
    doc = json.loads(body)
    assert doc["name"] == "alpha" and doc["method"] == "GET", doc
    assert doc["path"] == "/some/path?x=1", doc
    assert doc["protocol"] == "HTTP/2", doc
    h = echo_headers(doc)
    assert h.get("x-test-header") == "hello", h
    assert h.get("host") == f"127.0.0.1:{e.port}", h
    assert not any(k.startswith(":") for k in h), h
    assert doc["bodyBytes"] == 0
    # HTTP/1.1 on the same port still works, with the same shape of reply.
    r = http_request(e.port, "GET", "/some/path?x=1")
    assert r.status == 200 and r.json()["protocol"] == "HTTP/1.1", r
    assert set(r.json()) == set(doc)


def test_h2c_paths_and_status_flag(env):
    e = env.echo(name="h2")
    assert h2_get(e.port, "/status/503")[0] == 503
    assert h2_get(e.port, "/status/204")[0] == 204
    for n in (0, 1, 12345, 1_000_000):
        status, headers, body = h2_get(e.port, f"/bytes/{n}")
        assert status == 200 and len(body) == n, (n, len(body))
        assert headers.get("content-length") == str(n)
    # The same bytes as HTTP/1.1.
    assert h2_get(e.port, "/bytes/50000")[2] == http_request(e.port, "GET", "/bytes/50000").body
    f = env.echo(name="failing", status=503)
    status, headers, _ = h2_get(f.port, "/")
    assert status == 503 and headers.get("x-echo-name") == "failing"


def test_h2c_upload_is_counted(env, tmp_path):
    e = env.echo()
    data = tmp_path / "upload.bin"
    data.write_bytes(bytes(range(256)) * 20_000)  # 5 MB: several flow-control windows
    status, _, body = h2_get(e.port, "/upload", "--data-binary", f"@{data}")
    assert status == 200
    doc = json.loads(body)
    assert doc["method"] == "POST" and doc["bodyBytes"] == 5_120_000, doc


def test_h2c_delay_does_not_block_other_streams(env):
    e = env.echo(name="slow")
    base = f"http://127.0.0.1:{e.port}"
    t0 = time.monotonic()
    r = curl("--http2-prior-knowledge", "--parallel", "--parallel-immediate", "-o", "/dev/null", "-o", "/dev/null",
             "-w", "%{url_effective} %{http_code} %{time_total} %{num_connects}\n",
             f"{base}/delay/1000", f"{base}/fast", timeout=30)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    times = {}
    for line in r.stdout.decode().split("\n"):
        if line.strip():
            url, code, t, _ = line.split()
            assert code == "200", line
            times[url.rsplit("/", 1)[1]] = float(t)
    assert times["fast"] < 0.5, times
    assert times["1000"] >= 0.95, times
    assert took < 10


def test_h2c_large_download_bounded_memory(env):
    e = env.echo(name="big")
    r = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
             f"http://127.0.0.1:{e.port}/bytes/104857600", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "200 104857600", r.stdout
    assert rss_kb(e.proc.pid) < 64 * 1024, f"echo RSS {rss_kb(e.proc.pid)} kB after 100 MB over h2"


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load not installed")
def test_h2load_all_2xx(env):
    import subprocess
    e = env.echo(name="load")
    out = subprocess.run(["h2load", "-n", "20000", "-c", "4", "-m", "16", f"http://127.0.0.1:{e.port}/"],
                         capture_output=True, text=True, timeout=120).stdout
    assert "Application protocol: h2c" in out, out
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    assert m and m.group(3) == "20000" and m.group(4) == "0", out
    assert re.search(r"status codes: 20000 2xx, 0 3xx, 0 4xx, 0 5xx", out), out
    assert e.proc.alive()
