"""`remora echo` on its own (SPEC §7): default reply, /status, /bytes, /delay, --status,
request bodies counted; HTTP/1.1 and h2c (prior knowledge) on the same port; HTTPS with
--tls-cert/--tls-key (ALPN h2 and http/1.1)."""
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


# ---------------------------------------------------------------------------
# HTTPS: --tls-cert/--tls-key (ALPN h2 and http/1.1)

import socket
import ssl
import struct
import subprocess

from certs import make_pki
from harness import free_port, wait_for_port


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"), server_names=["echo.test", "localhost", "127.0.0.1"])


def tls_echo(env, pki, name="tls", status=None):
    port = free_port()
    args = [env.bin, "echo", "--listen", f"127.0.0.1:{port}", "--name", name,
            "--tls-cert", pki["server_cert"], "--tls-key", pki["server_key"]]
    if status is not None:
        args += ["--status", str(status)]
    p = env.pm.start(f"echo-{name}", args)
    wait_for_port(port, 20, p)
    return p, port


def tls_curl(pki, port, path, *args, timeout=60):
    """curl over HTTPS to echo.test (resolved to 127.0.0.1), verifying against the test CA."""
    return curl("--cacert", pki["ca"], "--resolve", f"echo.test:{port}:127.0.0.1", *args,
                f"https://echo.test:{port}{path}", timeout=timeout)


def tls_socket(pki, port, alpn=None):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if alpn:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="echo.test")


def test_tls_h2_and_http1_with_curl(env, pki):
    p, port = tls_echo(env, pki, name="secure")
    for flag, proto, ver in (("--http2", "HTTP/2", "2"), ("--http1.1", "HTTP/1.1", "1.1")):
        r = tls_curl(pki, port, "/some/path?x=1", flag, "-H", "X-Test-Header: hello",
                     "-w", "\n%{http_code} %{http_version}")
        assert r.returncode == 0, r.stderr
        body, _, tail = r.stdout.decode().rpartition("\n")
        assert tail == f"200 {ver}", tail
        doc = json.loads(body)
        assert doc["name"] == "secure" and doc["protocol"] == proto, doc
        assert doc["path"] == "/some/path?x=1", doc
        assert doc.get("tls") is True, doc
        assert echo_headers(doc).get("x-test-header") == "hello"
    # The plain-HTTP reply has no "tls" key.
    plain = env.echo(name="plain")
    assert "tls" not in http_request(plain.port, "GET", "/").json()
    assert p.alive()


def test_tls_bytes_upload_and_status(env, pki):
    _, port = tls_echo(env, pki, name="bulk")
    for flag in ("--http2", "--http1.1"):
        for n in (0, 1, 12345, 1_000_000):
            r = tls_curl(pki, port, f"/bytes/{n}", flag, "-o", "/dev/null", "-w", "%{http_code} %{size_download}")
            assert r.returncode == 0, r.stderr
            assert r.stdout.decode() == f"200 {n}", (flag, n, r.stdout)
        r = tls_curl(pki, port, "/status/503", flag, "-o", "/dev/null", "-w", "%{http_code}")
        assert r.stdout.decode() == "503"
    up = env.dir / "upload.bin"
    up.write_bytes(bytes(range(256)) * 20_000)  # 5 MB
    for flag in ("--http2", "--http1.1"):
        r = tls_curl(pki, port, "/upload", flag, "--data-binary", f"@{up}")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["bodyBytes"] == 5_120_000


def test_tls_large_download_bounded_memory(env, pki):
    p, port = tls_echo(env, pki, name="big")
    for flag in ("--http2", "--http1.1"):
        r = tls_curl(pki, port, "/bytes/104857600", flag, "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                     timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode() == "200 104857600", r.stdout
    assert rss_kb(p.pid) < 64 * 1024, f"echo RSS {rss_kb(p.pid)} kB after 2 x 100 MB over TLS"


def test_tls_openssl_s_client(env, pki):
    _, port = tls_echo(env, pki)
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-alpn", "h2",
                        "-servername", "echo.test", "-CAfile", pki["ca"], "-verify_return_error"],
                       input="", capture_output=True, text=True, errors="replace", timeout=20)
    assert "ALPN protocol: h2" in r.stdout, r.stdout + r.stderr
    assert "TLSv1.3" in r.stdout, r.stdout
    assert "Verify return code: 0 (ok)" in r.stdout, r.stdout
    # TLS 1.0 is below the server's minimum (1.2): refused with a protocol_version alert.
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1"],
                       input="", capture_output=True, text=True, errors="replace", timeout=20)
    assert "alert protocol version" in r.stderr or "no protocols available" in r.stderr, r.stdout + r.stderr
    # TLS 1.2 is accepted.
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-alpn", "http/1.1",
                        "-CAfile", pki["ca"]], input="", capture_output=True, text=True, errors="replace", timeout=20)
    assert "Protocol  : TLSv1.2" in r.stdout and "ALPN protocol: http/1.1" in r.stdout, r.stdout


def test_tls_without_alpn_http1_and_h2_preface(env, pki):
    _, port = tls_echo(env, pki)
    # No ALPN, HTTP/1.1: keep-alive with two requests in one write.
    s = tls_socket(pki, port)
    try:
        assert s.selected_alpn_protocol() is None
        s.sendall(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.count(b"HTTP/1.1 200 OK") == 2, data
        assert b'"path":"/one"' in data and b'"path":"/two"' in data
    finally:
        s.close()
    # No ALPN, HTTP/2 by its preface: the server answers with its SETTINGS frame.
    s = tls_socket(pki, port)
    try:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + struct.pack(">I", 0)[1:] + b"\x04\x00" + b"\x00\x00\x00\x00")
        head = b""
        while len(head) < 9:
            chunk = s.recv(9 - len(head))
            assert chunk, "closed before a frame"
            head += chunk
        assert head[3] == 0x4, head  # SETTINGS
    finally:
        s.close()


def test_tls_bad_clients_do_not_disturb(env, pki):
    p, port = tls_echo(env, pki, name="sturdy")
    # Plain HTTP to the TLS port: the handshake fails and the connection closes.
    c = RawConn(port)
    try:
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert c.closed_within(5)
    finally:
        c.close()
    # Gone mid-handshake, and an untrusted client that aborts on the server's certificate.
    raw = socket.create_connection(("127.0.0.1", port))
    raw.sendall(b"\x16\x03\x01\x00\x50")
    raw.close()
    ctx = ssl.create_default_context()  # the system store: the test CA is unknown
    with pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="echo.test")
    r = tls_curl(pki, port, "/", "--http2", "-o", "/dev/null", "-w", "%{http_code}")
    assert r.stdout.decode() == "200", r.stderr
    assert p.alive()


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load not installed")
def test_tls_h2load_all_2xx(env, pki):
    p, port = tls_echo(env, pki, name="load")
    out = subprocess.run(["h2load", "-n", "10000", "-c", "4", "-m", "16", f"https://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=120).stdout
    assert "Application protocol: h2" in out, out
    assert re.search(r"requests: 10000 total, \d+ started, 10000 done, 10000 succeeded, 0 failed", out), out
    assert re.search(r"status codes: 10000 2xx, 0 3xx, 0 4xx, 0 5xx", out), out
    assert p.alive()


def test_tls_option_errors_exit_2(env, pki, tmp_path):
    port = free_port()
    base = ["echo", "--listen", f"127.0.0.1:{port}"]
    r = env.run(*base, "--tls-cert", pki["server_cert"])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "--tls-key" in r.stderr, r.stderr
    missing = tmp_path / "missing.pem"
    r = env.run(*base, "--tls-cert", missing, "--tls-key", pki["server_key"])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert str(missing) in r.stderr and "No such file" in r.stderr, r.stderr
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    r = env.run(*base, "--tls-cert", junk, "--tls-key", pki["server_key"])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert str(junk) in r.stderr, r.stderr
    # A key that is not the certificate's.
    r = env.run(*base, "--tls-cert", pki["server_cert"], "--tls-key", pki["client_key"])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "mismatch" in r.stderr, r.stderr
    assert "PRIVATE KEY" not in r.stderr
