"""Route actions with Istio's semantics (VirtualService reference), end to end through the
binary: rewrite, redirect, directResponse, header manipulation, fault injection,
mirroring and CORS. Each test starts its own proxy (mesh outbound listener, specific
hosts, requests carry the matching Host header) in front of `remora echo` (its JSON
body shows the path and headers it received) or a RecordingBackend (raw header list,
every request it saw), and asserts on what the backend and the client saw.
"""
from __future__ import annotations

import time
from urllib.parse import urlsplit

import harness
from harness import RawConn, free_port, http_request

NS = "default"


# ---------------------------------------------------------------------------
# helpers

def _vs(name: str, host: str, http: list[dict]) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"hosts": [host], "http": http}}


def _dest(host: str, **kw) -> dict:
    d = {"host": host, "port": {"number": 80}}
    d.update(kw)
    return d


def _start(env, services: dict[str, int], vss: list[dict], name: str = "actions"):
    """services: {ServiceEntry host: backend port}. Returns the mesh listener port."""
    ports = {k: free_port() for k in ("listen", "admin", "health", "metrics")}
    docs = [harness.proxy_resource(ports["listen"], ports["admin"], ports["health"], ports["metrics"])]
    for i, (host, port) in enumerate(services.items()):
        docs.append(harness.service_entry(f"se{i}", host, [port]))
    docs += vss
    proxy = env.run_proxy([env.write(docs, f"{name}-{ports['listen']}.yaml")], ports, name=f"remora-{name}")
    return proxy


def _values(req, name: str) -> list[str]:
    """All values of a header at a RecordingBackend, comma lists split (so that `add`
    as a second field line or as `a, b` in one line read the same)."""
    out = []
    for v in req.header_all(name):
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def _resp_values(r, name: str) -> list[str]:
    out = []
    for k, v in r.headers:
        if k.lower() == name.lower():
            out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def _get(port, host, path="/", headers=(), method="GET", body=None, timeout=10.0):
    return http_request(port, method, path, host=host, headers=list(headers), body=body, timeout=timeout)


def _keepalive_statuses(port: int, host: str, n: int, path: str = "/") -> list[int]:
    """n GETs on keep-alive connections (a new one whenever the proxy closes)."""
    statuses = []
    c = RawConn(port)
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    try:
        while len(statuses) < n:
            c.send(req)
            r = c.read_response()
            statuses.append(r.status)
            if (r.header("connection") or "").lower() == "close":
                c.close()
                c = RawConn(port)
    finally:
        c.close()
    return statuses


# ---------------------------------------------------------------------------
# rewrite

def test_rewrite_uri_prefix_authority_and_regex(env):
    echo = env.echo(name="rw")
    host = "rw.local"
    proxy = _start(env, {"rw-backend.local": echo.port}, [_vs("rw", host, [
        {"name": "prefix", "match": [{"uri": {"prefix": "/old"}}],
         "rewrite": {"uri": "/new"}, "route": [{"destination": _dest("rw-backend.local")}]},
        {"name": "exact", "match": [{"uri": {"exact": "/exact"}}],
         "rewrite": {"uri": "/replaced/whole"}, "route": [{"destination": _dest("rw-backend.local")}]},
        {"name": "authority", "match": [{"uri": {"prefix": "/auth"}}],
         "rewrite": {"authority": "internal.example"}, "route": [{"destination": _dest("rw-backend.local")}]},
        {"name": "regex", "match": [{"uri": {"prefix": "/service/"}}],
         "rewrite": {"uriRegexRewrite": {"match": "^/service/([^/]+)(/.*)$", "rewrite": "\\2/instance/\\1"}},
         "route": [{"destination": _dest("rw-backend.local")}]},
        {"name": "plain", "route": [{"destination": _dest("rw-backend.local")}]},
    ])], "rewrite")
    port = proxy.port

    problems = []

    def seen(path):
        r = _get(port, host, path)
        assert r.status == 200 and r.header("x-echo-name") == "rw", f"GET {path}: {r!r}"
        d = r.json()
        return d["path"], harness.echo_headers(d).get("host")

    def expect(path, want_path, want_host, what):
        got_path, got_host = seen(path)
        if (got_path, got_host) != (want_path, want_host):
            problems.append(f"{what}: GET {path} (Host: {host}) -> backend saw path {got_path!r} Host {got_host!r}, "
                            f"expected path {want_path!r} Host {want_host!r}")

    # prefix match: the matched prefix is replaced, the rest of the path and the query kept
    expect("/old/item?x=1&y=2", "/new/item?x=1&y=2", host, "rewrite.uri after prefix /old")
    expect("/old", "/new", host, "rewrite.uri after prefix /old")
    # not a prefix match: the whole path is replaced, the query kept
    expect("/exact?q=1", "/replaced/whole?q=1", host, "rewrite.uri after exact /exact")
    # authority: the backend sees the new Host, the path is untouched
    expect("/auth/z?q=1", "/auth/z?q=1", "internal.example", "rewrite.authority")
    # uriRegexRewrite with capture groups (RE2 \N substitutions)
    expect("/service/foo/v1/api", "/v1/api/instance/foo", host, "uriRegexRewrite")
    # a request no rewrite rule matches reaches the backend as it was sent
    expect("/plain/path?k=v", "/plain/path?k=v", host, "no rewrite")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# redirect

def test_redirect(env):
    rec = env.recording_backend("redir-backend")
    host = "redirect.local"

    def rule(path, redirect):
        return {"match": [{"uri": {"exact": path}}], "redirect": redirect}

    proxy = _start(env, {"rd-backend.local": rec.port}, [_vs("redirect", host, [
        rule("/r/default", {"uri": "/new/default"}),
        rule("/r/302", {"uri": "/new/302", "redirectCode": 302}),
        rule("/r/authority", {"authority": "other.example"}),
        rule("/r/scheme", {"scheme": "https"}),
        rule("/r/port", {"port": 8443}),
        rule("/r/all", {"uri": "/x/y", "authority": "other.example", "scheme": "https", "port": 8443,
                        "redirectCode": 308}),
        # Istio: redirect.uri replaces the entire path even when the match was a prefix
        {"match": [{"uri": {"prefix": "/r/prefix"}}], "redirect": {"uri": "/whole"}},
        {"route": [{"destination": _dest("rd-backend.local")}]},
    ])], "redirect")
    port = proxy.port

    cases = [
        # path, status, (scheme, host[:port], path[?query]) of Location
        ("/r/default", 301, ("http", host, "/new/default")),
        ("/r/302", 302, ("http", host, "/new/302")),
        ("/r/authority", 301, ("http", "other.example", "/r/authority")),
        ("/r/scheme", 301, ("https", host, "/r/scheme")),
        ("/r/port", 301, ("http", f"{host}:8443", "/r/port")),
        ("/r/all", 308, ("https", "other.example:8443", "/x/y")),
        ("/r/prefix/deep/er", 301, ("http", host, "/whole")),
        # the path is swapped, the query string is not part of it (Envoy keeps it:
        # path_redirect without a query, strip_query unset)
        ("/r/default?bar=1", 301, ("http", host, "/new/default?bar=1")),
    ]
    failures = []
    for path, status, (scheme, netloc, lpath) in cases:
        r = _get(port, host, path)
        loc = r.header("location")
        if r.status != status or loc is None:
            failures.append(f"GET {path}: expected {status} with Location {scheme}://{netloc}{lpath}, "
                            f"got {r.status} Location={loc!r} body={r.body[:120]!r}")
            continue
        u = urlsplit(loc)
        if (u.scheme, u.netloc, u.path + (f"?{u.query}" if u.query else "")) != (scheme, netloc, lpath):
            failures.append(f"GET {path}: expected Location {scheme}://{netloc}{lpath}, got {loc!r}")
    assert not failures, "\n".join(failures)
    assert rec.heads_seen == 0, f"redirected requests reached the backend: {[q.target for q in rec.requests]}"
    # the non-redirect rule still routes
    r = _get(port, host, "/elsewhere")
    assert r.status == 200 and r.header("x-backend-name") == "redir-backend", r


# ---------------------------------------------------------------------------
# directResponse

def test_direct_response(env):
    rec = env.recording_backend("direct-backend")
    host = "direct.local"
    proxy = _start(env, {"dr-backend.local": rec.port}, [_vs("direct", host, [
        {"match": [{"uri": {"prefix": "/down"}}],
         "directResponse": {"status": 503, "body": {"string": "down for maintenance"}}},
        {"match": [{"uri": {"exact": "/hello"}}],
         "directResponse": {"status": 200, "body": {"string": "hello from remora"}}},
        {"route": [{"destination": _dest("dr-backend.local")}]},
    ])], "direct")
    r = _get(proxy.port, host, "/down/now")
    assert (r.status, r.body) == (503, b"down for maintenance"), r
    r = _get(proxy.port, host, "/hello")
    assert (r.status, r.body) == (200, b"hello from remora"), r
    # POST with a body is answered the same way
    r = _get(proxy.port, host, "/hello", method="POST", body=b"x" * 1000)
    assert (r.status, r.body) == (200, b"hello from remora"), r
    assert rec.heads_seen == 0, f"direct responses reached the backend: {[q.target for q in rec.requests]}"
    r = _get(proxy.port, host, "/other")
    assert r.status == 200 and r.header("x-backend-name") == "direct-backend", r


# ---------------------------------------------------------------------------
# headers

def test_header_manipulation_route_and_destination_level(env):
    rec = env.recording_backend("hdr-backend")
    host = "headers.local"
    proxy = _start(env, {"hdr-backend.local": rec.port}, [_vs("headers", host, [{
        "headers": {
            "request": {"set": {"x-route-set": "route"}, "add": {"x-route-add": "added"},
                        "remove": ["x-remove-me"]},
            "response": {"set": {"x-resp-set": "s", "content-type": "text/x-remora-test"},
                         "add": {"x-resp-add": "a"}, "remove": ["x-backend-name"]},
        },
        "route": [{"destination": _dest("hdr-backend.local"),
                   "headers": {"request": {"set": {"x-dest-set": "d"}, "remove": ["x-dest-remove"]},
                               "response": {"set": {"x-dest-resp": "dr"}}}}],
    }])], "headers")

    r = _get(proxy.port, host, "/h", headers=[
        ("x-route-set", "client"), ("x-route-add", "client"), ("x-remove-me", "secret"),
        ("x-dest-remove", "secret2"), ("x-keep", "k")])
    assert r.status == 200, r
    assert rec.wait_for(1), "the request did not reach the backend"
    req = rec.requests[-1]
    seen = {k.lower() for k, _ in req.headers}
    problems = []
    if _values(req, "x-route-set") != ["route"]:
        problems.append(f"request set: backend saw x-route-set={req.header_all('x-route-set')}, expected ['route']")
    if _values(req, "x-route-add") != ["client", "added"]:
        problems.append(f"request add: backend saw x-route-add={req.header_all('x-route-add')}, expected client then added")
    if "x-remove-me" in seen:
        problems.append(f"request remove: backend still saw x-remove-me={req.header_all('x-remove-me')}")
    if _values(req, "x-dest-set") != ["d"]:
        problems.append(f"destination request set: backend saw x-dest-set={req.header_all('x-dest-set')}, expected ['d']")
    if "x-dest-remove" in seen:
        problems.append(f"destination request remove: backend still saw x-dest-remove={req.header_all('x-dest-remove')}")
    if _values(req, "x-keep") != ["k"]:
        problems.append(f"untouched header: backend saw x-keep={req.header_all('x-keep')}")
    # response side, as the client sees it
    if _resp_values(r, "x-resp-set") != ["s"]:
        problems.append(f"response set: client saw x-resp-set={_resp_values(r, 'x-resp-set')}")
    if [v for k, v in r.headers if k.lower() == "content-type"] != ["text/x-remora-test"]:
        problems.append(f"response set (overwrite upstream content-type): client saw "
                        f"{[v for k, v in r.headers if k.lower() == 'content-type']}")
    if _resp_values(r, "x-resp-add") != ["a"]:
        problems.append(f"response add: client saw x-resp-add={_resp_values(r, 'x-resp-add')}")
    if r.header("x-backend-name") is not None:
        problems.append(f"response remove: client still saw x-backend-name={r.header('x-backend-name')}")
    if _resp_values(r, "x-dest-resp") != ["dr"]:
        problems.append(f"destination response set: client saw x-dest-resp={_resp_values(r, 'x-dest-resp')}")
    assert not problems, "\n".join(problems) + f"\nclient response: {r!r}\nbackend request headers: {req.headers}"
    # the body from the backend is intact
    assert r.json()["target"] == "/h"


# ---------------------------------------------------------------------------
# fault injection

def test_fault_abort_100_percent(env):
    rec = env.recording_backend("abort-backend")
    host = "abort.local"
    proxy = _start(env, {"ab-backend.local": rec.port}, [_vs("abort", host, [{
        "fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}},
        "route": [{"destination": _dest("ab-backend.local")}]}])], "abort")
    for i in range(5):
        r = _get(proxy.port, host, f"/a{i}")
        assert r.status == 418, f"request {i}: expected 418, got {r!r}"
    time.sleep(0.2)
    assert rec.heads_seen == 0, f"aborted requests reached the backend: {[q.target for q in rec.requests]}"


def test_fault_delay_100_percent(env):
    rec = env.recording_backend("delay-backend")
    host = "delay.local"
    proxy = _start(env, {"dl-backend.local": rec.port}, [_vs("delay", host, [{
        "fault": {"delay": {"fixedDelay": "300ms", "percentage": {"value": 100}}},
        "route": [{"destination": _dest("dl-backend.local")}]}])], "delay")
    for i in range(2):
        t0 = time.monotonic()
        r = _get(proxy.port, host, f"/d{i}")
        took = time.monotonic() - t0
        assert r.status == 200 and r.header("x-backend-name") == "delay-backend", r
        assert took >= 0.3, f"request {i} took {took * 1000:.0f} ms, expected >= 300 ms (fixedDelay 300ms at 100%)"
        assert took < 3.0, f"request {i} took {took:.2f} s"
    assert len(rec.requests) == 2


def test_fault_abort_50_percent(env):
    rec = env.recording_backend("abort50-backend")
    host = "abort50.local"
    proxy = _start(env, {"ab50-backend.local": rec.port}, [_vs("abort50", host, [{
        "fault": {"abort": {"httpStatus": 418, "percentage": {"value": 50}}},
        "route": [{"destination": _dest("ab50-backend.local")}]}])], "abort50")
    n = 400
    statuses = _keepalive_statuses(proxy.port, host, n, "/half")
    aborted = statuses.count(418)
    ok = statuses.count(200)
    assert aborted + ok == n, f"unexpected statuses: {sorted(set(statuses))}"
    assert 0.35 * n <= aborted <= 0.65 * n, f"abort at 50%: {aborted}/{n} aborted"
    assert rec.wait_for(ok, 5)
    time.sleep(0.1)
    assert len(rec.requests) == ok, f"backend saw {len(rec.requests)} requests, client got {ok} 200s"


# ---------------------------------------------------------------------------
# mirror

def test_mirror_100_percent(env):
    primary = env.recording_backend("primary")
    shadow = env.recording_backend("shadow")
    host = "mirror.local"
    proxy = _start(env, {"primary.local": primary.port, "shadow.local": shadow.port}, [_vs("mirror", host, [{
        "route": [{"destination": _dest("primary.local")}],
        "mirror": _dest("shadow.local"),
        "mirrorPercentage": {"value": 100},
    }])], "mirror")
    body = b"mirrored body \x00\x01" * 64
    n = 5
    for i in range(n):
        r = _get(proxy.port, host, f"/m/{i}?x=1", method="POST", body=body, headers=[("x-test", str(i))])
        assert r.status == 200, r
        assert r.header("x-backend-name") == "primary", f"client did not get the primary's response: {r!r}"
        assert r.json()["target"] == f"/m/{i}?x=1"
    assert primary.wait_for(n), f"primary saw {len(primary.requests)} of {n}"
    assert shadow.wait_for(n, 5), f"mirror saw {len(shadow.requests)} of {n} requests (mirrorPercentage 100)"
    by_target = {q.target: q for q in shadow.requests}
    for i in range(n):
        q = by_target.get(f"/m/{i}?x=1")
        assert q is not None, f"mirror did not see /m/{i}?x=1: {list(by_target)}"
        assert q.method == "POST" and q.header("x-test") == str(i), q.summary()
        assert q.body_bytes == len(body) and q.sha256 == primary.requests[0].sha256, q.summary()
        assert q.header("host") == f"{host}-shadow", f"mirror Host: {q.header('host')!r}, expected {host}-shadow"
    for q in primary.requests:
        assert q.header("host") == host, f"primary Host: {q.header('host')!r}"


def test_mirror_that_never_answers_does_not_delay_client(env):
    primary = env.recording_backend("primary")
    stall = env.stall_backend("none")  # reads each request, never answers
    host = "mirror-stall.local"
    proxy = _start(env, {"primary.local": primary.port, "stall.local": stall.port}, [_vs("mirror-stall", host, [{
        "route": [{"destination": _dest("primary.local")}],
        "mirrors": [{"destination": _dest("stall.local"), "percentage": {"value": 100}}],
    }])], "mirror-stall")
    for i in range(3):
        t0 = time.monotonic()
        r = _get(proxy.port, host, f"/s/{i}", timeout=10)
        took = time.monotonic() - t0
        assert r.status == 200 and r.header("x-backend-name") == "primary", r
        assert took < 1.0, f"request {i} took {took:.2f} s with a mirror that never answers"
    # the mirror did get the copies (otherwise this test would prove nothing)
    got = stall.proc.read_line(5)
    assert got == "GOT", f"the never-answering mirror received no request (read {got!r})"
    # keep-alive too: two requests on one client connection, both prompt
    c = RawConn(proxy.port)
    try:
        for i in range(2):
            t0 = time.monotonic()
            c.send(f"GET /k/{i} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            r = c.read_response()
            took = time.monotonic() - t0
            assert r.status == 200 and took < 1.0, (r, took)
    finally:
        c.close()


# ---------------------------------------------------------------------------
# CORS

def test_cors_policy(env):
    rec = env.recording_backend("cors-backend")
    host = "cors.local"
    proxy = _start(env, {"cors-backend.local": rec.port}, [_vs("cors", host, [{
        "corsPolicy": {
            "allowOrigins": [{"exact": "https://a.example"}],
            "allowMethods": ["GET", "POST", "PUT"],
            "allowHeaders": ["x-custom", "content-type"],
            "exposeHeaders": ["x-exposed"],
            "maxAge": "24h",
            "allowCredentials": True,
        },
        "route": [{"destination": _dest("cors-backend.local")}]}])], "cors")
    port = proxy.port
    preflight = [("Origin", "https://a.example"), ("Access-Control-Request-Method", "PUT"),
                 ("Access-Control-Request-Headers", "x-custom")]

    # 1. preflight from the allowed origin: answered by the proxy
    r = _get(port, host, "/api", method="OPTIONS", headers=preflight)
    problems = []
    if r.status not in (200, 204):
        problems.append(f"status {r.status}, expected 200 (Envoy answers preflights 200)")
    if r.header("access-control-allow-origin") != "https://a.example":
        problems.append(f"access-control-allow-origin={r.header('access-control-allow-origin')!r}")
    methods = {m.upper() for m in _resp_values(r, "access-control-allow-methods")}
    if not {"GET", "POST", "PUT"} <= methods:
        problems.append(f"access-control-allow-methods={r.header('access-control-allow-methods')!r}")
    hdrs = {h.lower() for h in _resp_values(r, "access-control-allow-headers")}
    if not {"x-custom", "content-type"} <= hdrs:
        problems.append(f"access-control-allow-headers={r.header('access-control-allow-headers')!r}")
    if r.header("access-control-max-age") != "86400":
        problems.append(f"access-control-max-age={r.header('access-control-max-age')!r}, expected '86400' (24h)")
    if r.header("access-control-allow-credentials") != "true":
        problems.append(f"access-control-allow-credentials={r.header('access-control-allow-credentials')!r}")
    time.sleep(0.1)
    if rec.heads_seen:
        problems.append(f"the backend saw the preflight: {[(q.method, q.target) for q in rec.requests]}")
    assert not problems, "preflight from the allowed origin:\n" + "\n".join(problems) + f"\n{r!r}"

    # 2. preflight from another origin: forwarded (unmatchedPreflights defaults to FORWARD),
    #    and no allow headers come back
    r = _get(port, host, "/api", method="OPTIONS",
             headers=[("Origin", "https://b.example")] + preflight[1:])
    assert r.header("access-control-allow-origin") is None, f"other origin got allow-origin: {r!r}"
    assert r.header("access-control-allow-methods") is None, f"other origin got allow-methods: {r!r}"
    assert rec.wait_for(1, 3), "the preflight from a non-allowed origin was not forwarded to the backend"
    assert rec.requests[-1].method == "OPTIONS"
    assert r.status == 200 and r.header("x-backend-name") == "cors-backend", r

    # 3. an actual request from the allowed origin reaches the backend and gets the CORS headers
    r = _get(port, host, "/api", headers=[("Origin", "https://a.example")])
    assert r.status == 200 and r.header("x-backend-name") == "cors-backend", r
    assert r.header("access-control-allow-origin") == "https://a.example", f"GET with allowed Origin: {r!r}"
    assert "x-exposed" in {h.lower() for h in _resp_values(r, "access-control-expose-headers")}, \
        f"GET with allowed Origin: access-control-expose-headers={r.header('access-control-expose-headers')!r}"
    # 4. from another origin: served, without allow-origin
    r = _get(port, host, "/api", headers=[("Origin", "https://b.example")])
    assert r.status == 200 and r.header("access-control-allow-origin") is None, r
    assert rec.wait_for(3, 3) and [q.method for q in rec.requests] == ["OPTIONS", "GET", "GET"], \
        [(q.method, q.target) for q in rec.requests]
