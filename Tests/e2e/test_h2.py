"""HTTP/2 through the proxy with real peers: h2c prior knowledge on the mesh outbound
listener (the same port as HTTP/1.1), h2c upstream when the ServiceEntry port protocol is
HTTP2/GRPC or a DestinationRule says h2UpgradePolicy: UPGRADE, HTTP/1.1 upstream
otherwise; translation both ways (bodies, chunked <-> DATA, trailers <-> trailers), and
the acceptance load `h2load -n 100000 -c 8 -m 32` to an HTTP/1.1 and an h2c backend.
(gRPC has its own module, test_grpc.py.)

Peers: curl (--http2-prior-knowledge / --http1.1), nghttp, h2load, `remora echo`
(answers HTTP/1.1 and h2c; its JSON says which protocol it saw), the raw h2 client and
the recording h2c server of h2_peers.py, raw HTTP/1.1 sockets (harness.RawConn).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time

import pytest

import harness
from harness import RawConn, echo_headers, http_request
from h2_peers import (H2Backend, H2Client, h2_upgrade_rule, parse_h2load,
                      read_h1_response_with_trailers, start_proxy)

H1 = "HTTP"      # ServiceEntry port protocol -> HTTP/1.1 upstream
H2 = "HTTP2"     # -> h2c upstream
SAW = {H1: "HTTP/1.1", H2: "HTTP/2"}


# ---------------------------------------------------------------------------
# helpers

class CurlResult:
    def __init__(self, cp: subprocess.CompletedProcess, body: bytes, head: str):
        self.rc = cp.returncode
        self.stderr = cp.stderr.decode("utf-8", "replace")
        parts = cp.stdout.decode().split()
        self.code = int(parts[0]) if parts else 0
        self.http_version = parts[1] if len(parts) > 1 else ""
        self.size = int(float(parts[2])) if len(parts) > 2 else -1
        self.body = body
        self.head = head
        self.headers: list[tuple[str, str]] = []
        # the last header block (curl -D writes 1xx blocks too)
        block = [b for b in re.split(r"\r?\n\r?\n", head.strip()) if b.strip()]
        for ln in (block[-1].splitlines()[1:] if block else []):
            k, _, v = ln.partition(":")
            self.headers.append((k.strip().lower(), v.strip()))

    def header(self, name: str) -> str | None:
        vals = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(vals) if vals else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f"<curl rc={self.rc} code={self.code} http_version={self.http_version} "
                f"size={self.size} headers={self.headers} stderr={self.stderr.strip()!r} "
                f"body={self.body[:300]!r}>")


_n = 0


def curl_fetch(env, px, host: str, path: str, http: str = "h2", data_file=None,
               chunked: bool = False, extra=(), timeout: float = 60) -> CurlResult:
    """curl through the proxy: http "h2" (prior knowledge) or "h1"; the URL's authority
    is `host` (port 80 left out), the connection goes to the proxy's listener."""
    global _n
    _n += 1
    out = env.dir / f"curl-{_n}.body"
    hdr = env.dir / f"curl-{_n}.head"
    args = ["--http2-prior-knowledge" if http == "h2" else "--http1.1",
            "--connect-to", f"{host}:80:127.0.0.1:{px.port}",
            "-o", out, "-D", hdr, "-w", "%{http_code} %{http_version} %{size_download}",
            "--max-time", str(timeout)]
    if data_file is not None:
        args += ["--data-binary", f"@{data_file}", "-H", "Content-Type: application/octet-stream"]
    if chunked:
        args += ["-H", "Transfer-Encoding: chunked"]
    args += list(extra)
    args.append(f"http://{host}{path}")
    cp = harness.curl(*args, timeout=timeout + 15)
    body = out.read_bytes() if out.exists() else b""
    head = hdr.read_text("latin-1") if hdr.exists() else ""
    return CurlResult(cp, body, head)


def run_h2load(px, authority: str, n: int = 100_000, c: int = 8, m: int = 32,
               timeout: float = 900) -> tuple[dict, str]:
    cmd = ["h2load", "-n", str(n), "-c", str(c), "-m", str(m),
           "-H", f":authority: {authority}", f"http://127.0.0.1:{px.port}/"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    return parse_h2load(out), out


def h2_backend(env, name: str = "h2b") -> H2Backend:
    b = H2Backend(name=name)
    env.servers.append(b)
    return b


# ---------------------------------------------------------------------------
# h2 client -> HTTP/1.1 backend, h2c backend, and the other way round

def test_curl_h2_prior_knowledge_to_h1_backend(env):
    e = env.echo(name="h1b")
    px = start_proxy(env, {"backend.local": (e.port, H1)})
    r = curl_fetch(env, px, "backend.local", "/hello?x=1", http="h2",
                   extra=["-H", "x-test: h2-client"])
    assert r.rc == 0 and r.code == 200, r
    assert r.http_version == "2", f"curl did not speak HTTP/2 to the proxy: {r}"
    assert r.header("x-echo-name") == "h1b", r
    doc = r.json()
    assert doc["protocol"] == "HTTP/1.1", f"backend should see HTTP/1.1: {doc}"
    assert doc["path"] == "/hello?x=1", doc
    h = echo_headers(doc)
    assert h.get("x-test") == "h2-client", h
    assert h.get("host") == "backend.local", f"the h1 request must carry Host from :authority: {h}"
    assert len(h.get("x-request-id", "")) >= 8, f"no x-request-id on the h2 path: {h}"


def test_nghttp_to_h2c_backend(env):
    e = env.echo(name="h2b")
    px = start_proxy(env, {"h2.local": (e.port, H2)})
    p = subprocess.run(["nghttp", "-v", "-H", ":authority: h2.local",
                        f"http://127.0.0.1:{px.port}/nghttp?q=1"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    out = p.stdout
    assert p.returncode == 0, f"nghttp rc={p.returncode}\n{out}\n{p.stderr}"
    assert "recv SETTINGS frame" in out, f"no HTTP/2 SETTINGS from the proxy:\n{out}"
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out
    assert re.search(r"recv \(stream_id=\d+\) x-echo-name: h2b", out), out
    m = re.search(r"^\{", out, re.M)
    assert m, f"no JSON body in nghttp output:\n{out}"
    doc, _ = json.JSONDecoder().raw_decode(out[m.start():])
    assert doc["protocol"] == "HTTP/2", f"backend should see HTTP/2: {doc}"
    assert doc["path"] == "/nghttp?q=1", doc


def test_h1_client_to_h2c_backend(env):
    e = env.echo(name="h2b")
    px = start_proxy(env, {"h2.local": (e.port, H2)})
    r = curl_fetch(env, px, "h2.local", "/via-h1", http="h1")
    assert r.rc == 0 and r.code == 200 and r.http_version == "1.1", r
    assert r.json()["protocol"] == "HTTP/2", f"backend should see HTTP/2: {r.json()}"
    assert r.header("x-echo-name") == "h2b", r

    # raw socket, keep-alive: the response framing (Content-Length or chunked) must be
    # right, else the second response on the connection comes out wrong
    c = RawConn(px.port)
    try:
        for n in (0, 1, 100_000, 17):
            c.send(f"GET /bytes/{n} HTTP/1.1\r\nHost: h2.local\r\n\r\n".encode())
            resp = c.read_response()
            assert resp.status == 200, resp
            assert len(resp.body) == n, (n, len(resp.body), resp.headers)
            cl = resp.header("content-length")
            if cl is not None:
                assert int(cl) == n, resp.headers
            assert resp.header("x-echo-name") == "h2b", resp.headers
        c.send(b"GET /doc HTTP/1.1\r\nHost: h2.local\r\nX-From: raw\r\n\r\n")
        resp = c.read_response()
        doc = resp.json()
        assert doc["protocol"] == "HTTP/2" and doc["path"] == "/doc", doc
        assert echo_headers(doc).get("x-from") == "raw", doc
    finally:
        c.close()


def test_destination_rule_h2_upgrade(env):
    e = env.echo(name="up")
    px = start_proxy(env, {"up.local": (e.port, H1), "plain.local": (e.port, H1)},
                     extra=[h2_upgrade_rule("up", "up.local")])
    up = curl_fetch(env, px, "up.local", "/upgraded", http="h1")
    assert up.rc == 0 and up.code == 200, up
    assert up.json()["protocol"] == "HTTP/2", \
        f"h2UpgradePolicy: UPGRADE must make the upstream HTTP/2: {up.json()}"
    plain = curl_fetch(env, px, "plain.local", "/plain", http="h1")
    assert plain.rc == 0 and plain.code == 200, plain
    assert plain.json()["protocol"] == "HTTP/1.1", \
        f"without the DestinationRule the upstream stays HTTP/1.1: {plain.json()}"
    # and an h2 client on the upgraded host
    up2 = curl_fetch(env, px, "up.local", "/upgraded2", http="h2")
    assert up2.code == 200 and up2.http_version == "2" and up2.json()["protocol"] == "HTTP/2", up2


# ---------------------------------------------------------------------------
# bodies

@pytest.mark.parametrize("client,backend", [("h2", H1), ("h1-chunked", H2), ("h2", H2)],
                         ids=["h2-to-h1", "h1chunked-to-h2", "h2-to-h2"])
def test_upload_5mib(env, client, backend):
    e = env.echo(name="up")
    px = start_proxy(env, {"backend.local": (e.port, backend)})
    data = os.urandom(5 * 1024 * 1024)
    f = env.dir / "upload.bin"
    f.write_bytes(data)
    r = curl_fetch(env, px, "backend.local", "/upload", http="h2" if client == "h2" else "h1",
                   data_file=f, chunked=(client == "h1-chunked"))
    assert r.rc == 0 and r.code == 200, r
    doc = r.json()
    assert doc["method"] == "POST", doc
    assert doc["protocol"] == SAW[backend], doc
    assert doc["bodyBytes"] == len(data), f"backend counted {doc['bodyBytes']} of {len(data)} bytes"


@pytest.mark.parametrize("client", ["h1", "h2"])
@pytest.mark.parametrize("backend", [H1, H2], ids=["h1-backend", "h2-backend"])
def test_download_3mb(env, client, backend):
    e = env.echo(name="dl")
    px = start_proxy(env, {"backend.local": (e.port, backend)})
    r = curl_fetch(env, px, "backend.local", "/bytes/3000000", http=client)
    assert r.rc == 0 and r.code == 200, r
    assert r.http_version == ("2" if client == "h2" else "1.1"), r
    assert r.size == 3_000_000 and len(r.body) == 3_000_000, r
    # the backend really was reached with the configured protocol
    p = curl_fetch(env, px, "backend.local", "/which", http=client)
    assert p.code == 200 and p.json()["protocol"] == SAW[backend], p


def test_h1_and_h2c_on_the_same_port(env):
    e = env.echo(name="both")
    px = start_proxy(env, {"backend.local": (e.port, H1)})
    for i in range(3):
        a = curl_fetch(env, px, "backend.local", f"/h1-{i}", http="h1")
        b = curl_fetch(env, px, "backend.local", f"/h2-{i}", http="h2")
        assert a.code == 200 and a.http_version == "1.1" and a.json()["path"] == f"/h1-{i}", a
        assert b.code == 200 and b.http_version == "2" and b.json()["path"] == f"/h2-{i}", b
    # both kinds of connection open at once, interleaved
    h1 = RawConn(px.port)
    with H2Client(px.port, authority="backend.local") as h2c:
        try:
            for i in range(5):
                h1.send(f"GET /k1-{i} HTTP/1.1\r\nHost: backend.local\r\n\r\n".encode())
                s = h2c.get(f"/k2-{i}")
                r = h1.read_response()
                assert r.status == 200 and r.json()["path"] == f"/k1-{i}", r
                assert s.status == 200 and s.json()["path"] == f"/k2-{i}", (s, h2c.describe())
        finally:
            h1.close()
    r = http_request(px.port, "GET", "/last", host="backend.local")
    assert r.status == 200, r


# ---------------------------------------------------------------------------
# trailers

def test_response_trailers_h2_backend_to_h1_client(env):
    b = h2_backend(env, "tr")
    px = start_proxy(env, {"tr.local": (b.port, H2)})
    c = RawConn(px.port)
    try:
        c.send(b"GET /trailers/100000 HTTP/1.1\r\nHost: tr.local\r\nTE: trailers\r\n\r\n")
        r, trailers = read_h1_response_with_trailers(c)
        assert r.status == 200, r
        assert "chunked" in (r.header("transfer-encoding") or "").lower(), \
            f"trailers need a chunked response: {r.headers}"
        assert len(r.body) == 100_000, len(r.body)
        td = dict(trailers)
        assert td.get("x-checksum") == hashlib.sha256(r.body).hexdigest(), \
            f"response trailers did not reach the HTTP/1.1 client: {trailers}"
        assert td.get("x-trailer-two") == "end", trailers
        # the connection is still in sync
        c.send(b"GET /after HTTP/1.1\r\nHost: tr.local\r\n\r\n")
        r2 = c.read_response()
        assert r2.status == 200 and r2.json()["path"] == "/after", r2
    finally:
        c.close()
    assert b.wait_for(2), b.requests
    first = b.requests[0]
    assert first.header(":method") == "GET" and first.header(":path") == "/trailers/100000", first
    # RFC 9113 8.3.1: an origin-form HTTP/1.1 request may go out with `host` instead of :authority
    assert (first.header(":authority") or first.header("host")) == "tr.local", first
    assert first.header(":scheme") == "http", first
    assert first.header("te") == "trailers", f"te: trailers not forwarded upstream: {first.headers}"
    assert not b.errors, b.errors


def test_response_trailers_h2_backend_to_h2_client(env):
    b = h2_backend(env, "tr")
    px = start_proxy(env, {"tr.local": (b.port, H2)})
    with H2Client(px.port, authority="tr.local") as c:
        s = c.get("/trailers/100000", headers=[("te", "trailers")])
        assert s.status == 200 and s.ended, (s, c.describe())
        assert len(s.data) == 100_000, len(s.data)
        assert s.trailer("x-checksum") == hashlib.sha256(bytes(s.data)).hexdigest(), s
        assert s.trailer("x-trailer-two") == "end", s
    assert not b.errors, b.errors


def test_request_trailers_h1_chunked_to_h2_backend(env):
    b = h2_backend(env, "rt")
    px = start_proxy(env, {"rt.local": (b.port, H2)})
    body = os.urandom(200_000)
    digest = hashlib.sha256(body).hexdigest()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 30000]), body[i:i + 30000])
                      for i in range(0, len(body), 30000))
    c = RawConn(px.port)
    try:
        c.send(b"POST /upload?x=1 HTTP/1.1\r\nHost: rt.local\r\nTransfer-Encoding: chunked\r\n"
               b"Trailer: x-checksum, x-client-trailer\r\nTE: trailers\r\n\r\n" + chunks
               + b"0\r\nx-checksum: " + digest.encode() + b"\r\nx-client-trailer: yes\r\n\r\n")
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200, r
    assert b.wait_for(1), "request did not reach the h2 backend"
    req = b.requests[0]
    assert req.header(":method") == "POST" and req.header(":path") == "/upload?x=1", req
    assert (req.header(":authority") or req.header("host")) == "rt.local", req
    assert req.header(":scheme") == "http", req
    assert req.body_bytes == len(body) and req.sha256 == digest, req
    td = dict(req.trailers)
    assert td.get("x-checksum") == digest and td.get("x-client-trailer") == "yes", \
        f"request trailers did not reach the h2 backend as trailers: {req}"
    assert req.header("transfer-encoding") is None, req.headers
    assert not b.errors, b.errors


# ---------------------------------------------------------------------------
# acceptance: h2load through the proxy, every response 2xx

def test_parse_h2load_output():
    sample = """starting benchmark...
spawning thread #0: 8 total client(s). 100000 total requests
Application protocol: h2c
progress: 100% done

finished in 6.32s, 15822.78 req/s, 4.11MB/s
requests: 100000 total, 100000 started, 100000 done, 99998 succeeded, 2 failed, 1 errored, 0 timeout
status codes: 99990 2xx, 0 3xx, 0 4xx, 8 5xx
traffic: 25.96MB (27223456) total
"""
    r = parse_h2load(sample)
    assert r["total"] == 100000 and r["succeeded"] == 99998 and r["failed"] == 2
    assert r["errored"] == 1 and r["2xx"] == 99990 and r["5xx"] == 8
    assert r["protocol"] == "h2c" and r["rps"] == 15822.78


@pytest.mark.parametrize("backend", [H1, H2], ids=["h1-backend", "h2c-backend"])
def test_h2load_acceptance(env, backend):
    e = env.echo(name="load")
    px = start_proxy(env, {"backend.local": (e.port, backend)})
    warm = curl_fetch(env, px, "backend.local", "/", http="h2")
    assert warm.code == 200 and warm.json()["protocol"] == SAW[backend], warm
    t0 = time.monotonic()
    res, out = run_h2load(px, "backend.local")
    took = time.monotonic() - t0
    print(f"h2load to {SAW[backend]} backend: {res} in {took:.1f}s")
    assert px.proc.alive(), f"proxy died under h2load:\n{out}"
    assert res["protocol"] == "h2c", f"h2load did not negotiate h2c:\n{out}"
    assert res["succeeded"] == 100_000 and res["failed"] == 0 and res["errored"] == 0 \
        and res["timeout"] == 0, f"h2load: {res}\n{out}"
    assert res["2xx"] == 100_000, f"not every response was 2xx: {res}\n{out}"
