"""The control endpoint (SPEC §3–§6) through the real binary: reloads under load that drop
nothing, refused changes, If-Match, history and rollback, readiness during a drain,
metrics, the access log and watched configuration files."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

import harness
from harness import RawConn, free_port, http_request, wait_for_port


def admin(px, method: str, path: str, body: str | bytes | None = None, headers: dict | None = None,
          port_key: str = "admin", timeout: float = 10):
    """(status, headers, body text) of one admin request."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(f"http://127.0.0.1:{px.ports[port_key]}{path}", data=data, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def two_backend_docs(env, extra_proxy: dict | None = None):
    """A proxy routing `shop` to backend "blue"; `green` is the other destination."""
    blue, green = env.echo("blue"), env.echo("green")
    ports = {k: free_port() for k in ("listen", "admin", "health", "metrics")}
    docs = [harness.proxy_resource(ports["listen"], ports["admin"], ports["health"], ports["metrics"], extra=extra_proxy),
            harness.service_entry("blue", "blue.local", [blue.port]),
            harness.service_entry("green", "green.local", [green.port]),
            harness.virtual_service("shop", ["shop.local"], "blue.local")]
    return docs, ports


def vs_json(dest: str) -> str:
    return json.dumps(harness.virtual_service("shop", ["shop.local"], dest))


def served_by(port: int) -> str | None:
    return http_request(port, "GET", "/", host="shop.local").header("x-echo-name")


def test_reload_under_load_drops_nothing(env):
    """SPEC §4 acceptance: wrk -c8 keep-alive load for 10 s, 100 reloads alternating between
    two configurations: no non-2xx, no socket error, no connection closed by the proxy, and
    routing switches on every reload."""
    docs, ports = two_backend_docs(env)
    px = env.run_proxy([env.write(docs)], ports)
    assert served_by(px.port) == "blue"
    # Keep-alive clients that fail if their connection is ever closed under them.
    stop = threading.Event()
    problems: list[str] = []
    counts = [0]

    def keepalive_client():
        c = RawConn(px.port, timeout=10)
        try:
            while not stop.is_set():
                c.send(b"GET / HTTP/1.1\r\nHost: shop.local\r\n\r\n")
                r = c.read_response()
                if r.status != 200:
                    problems.append(f"status {r.status}")
                counts[0] += 1
        except Exception as e:  # a closed connection lands here
            problems.append(f"keep-alive connection failed: {e!r}")
        finally:
            c.close()

    clients = [threading.Thread(target=keepalive_client) for _ in range(2)]
    for t in clients:
        t.start()
    wrk = subprocess.Popen(["wrk", "-t1", "-c8", "-d10s", "-H", "Host: shop.local", f"http://127.0.0.1:{px.port}/"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    switches, latencies = 0, []
    try:
        for i in range(100):
            dest = "green.local" if i % 2 == 0 else "blue.local"
            t0 = time.monotonic()
            st, _, body = admin(px, "PUT", "/config/virtualservices/default/shop", vs_json(dest),
                                {"Content-Type": "application/json"})
            latencies.append(time.monotonic() - t0)
            assert st == 200, body
            # The reply means every worker has it: the next new request sees it.
            if served_by(px.port) == dest.split(".")[0]:
                switches += 1
            time.sleep(0.05)
    finally:
        out, _ = wrk.communicate(timeout=30)
        stop.set()
        for t in clients:
            t.join(10)
    assert switches == 100, f"routing switched on {switches} of 100 reloads"
    assert not problems, problems[:5]
    assert counts[0] > 100, counts
    m = re.search(r"(\d+) requests in", out)
    assert m and int(m.group(1)) > 1000, out
    assert "Socket errors" not in out, out
    assert "Non-2xx" not in out, out
    latencies.sort()
    print(f"\n100 reloads under load: {m.group(1)} wrk requests, keep-alive client requests {counts[0]}; "
          f"PUT → reply median {latencies[50] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")


def test_invalid_change_refused_routing_unchanged(env):
    docs, ports = two_backend_docs(env)
    px = env.run_proxy([env.write(docs)], ports)
    bad = harness.virtual_service("shop", ["shop.local"], "green.local")
    bad["spec"]["http"][0]["match"] = [{"headers": {"userid": {"regex": "(unclosed"}}}]
    bad["spec"]["http"][0]["route"][0]["weight"] = 70
    st, _, body = admin(px, "PUT", "/config/virtualservices/default/shop", json.dumps(bad))
    assert st == 400, body
    errors = json.loads(body)["errors"]
    paths = {e["path"] for e in errors}
    assert "spec.http[0].match[0].headers.userid.regex" in paths, errors
    assert served_by(px.port) == "blue"
    # A retryOn token that is neither an Envoy condition nor a status code, named at its field.
    bad = harness.virtual_service("shop", ["shop.local"], "green.local")
    bad["spec"]["http"][0]["retries"] = {"attempts": 2, "retryOn": "5xx,connect-failures"}
    st, _, body = admin(px, "PUT", "/config/virtualservices/default/shop", json.dumps(bad))
    assert st == 400, body
    errors = json.loads(body)["errors"]
    assert [e["path"] for e in errors] == ["spec.http[0].retries.retryOn"], errors
    assert '"connect-failures"' in errors[0]["message"], errors
    assert served_by(px.port) == "blue"
    st, hdr, _ = admin(px, "GET", "/config")
    assert st == 200 and hdr.get("ETag", hdr.get("etag")) == '"1"', hdr
    # A stale If-Match is refused; the right one applies.
    st, _, body = admin(px, "PUT", "/config/virtualservices/default/shop", vs_json("green.local"), {"If-Match": '"7"'})
    assert st == 412, body
    st, _, body = admin(px, "PUT", "/config/virtualservices/default/shop", vs_json("green.local"), {"If-Match": '"1"'})
    assert st == 200 and json.loads(body)["version"] == 2, body
    assert served_by(px.port) == "green"
    st, _, body = admin(px, "GET", "/config/history")
    versions = [h["version"] for h in json.loads(body)["history"]]
    assert versions[-2:] == [1, 2], body
    st, _, body = admin(px, "POST", "/config/rollback")
    assert st == 200, body
    assert served_by(px.port) == "blue"


def test_readiness_and_drain_on_sigterm(env):
    docs, ports = two_backend_docs(env)
    px = env.run_proxy([env.write(docs)], ports)
    assert admin(px, "GET", "/healthz/ready", port_key="health")[0] == 200
    assert admin(px, "GET", "/ready")[0] == 200
    result = {}

    def slow():
        result["r"] = http_request(px.port, "GET", "/delay/1500", host="shop.local")

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.3)
    px.proc.signal(signal.SIGTERM)
    time.sleep(0.1)
    st = admin(px, "GET", "/healthz/ready", port_key="health")[0]
    assert st == 503, f"readiness {st} while draining"
    th.join(10)
    assert result["r"].status == 200, result
    assert px.proc.wait(10) == 0


def test_metrics_and_access_log(env, tmp_path):
    log = tmp_path / "access.log"
    docs, ports = two_backend_docs(env, extra_proxy={"accessLog": {"path": str(log)}})
    px = env.run_proxy([env.write(docs)], ports)
    assert served_by(px.port) == "blue"
    assert http_request(px.port, "GET", "/nope", host="unknown.local").status == 404
    st, _, text = admin(px, "GET", "/stats/prometheus", port_key="metrics")
    assert st == 200
    ok = [l for l in text.splitlines() if l.startswith("istio_requests_total{") and 'destination_service="blue.local"' in l]
    assert ok and 'response_code="200"' in ok[0] and 'request_protocol="http"' in ok[0] and 'reporter="source"' in ok[0], text
    nr = [l for l in text.splitlines() if l.startswith("istio_requests_total{") and 'response_flags="NR"' in l]
    assert nr and 'response_code="404"' in nr[0], text
    assert re.search(r'^istio_request_duration_milliseconds_bucket\{.*le="\+Inf"\} 1$', text, re.M), text
    assert re.search(r"^remora_config_version 1$", text, re.M), text
    # The access log is written by another thread: wait for the lines.
    deadline = time.monotonic() + 5
    lines = []
    while time.monotonic() < deadline:
        lines = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
        if len(lines) >= 2:
            break
        time.sleep(0.1)
    by_code = {l["response_code"]: l for l in lines}
    assert by_code[404]["response_flags"] == "NR", lines
    assert by_code[200]["upstream_cluster"].endswith("blue.local") and by_code[200]["x_request_id"], lines


def test_watched_files_reload(env, tmp_path):
    """`watch: true`: a ConfigMap-style update (the ..data symlink swapped) reloads."""
    docs, ports = two_backend_docs(env, extra_proxy={"watch": True})
    cfgdir = tmp_path / "cm"
    cfgdir.mkdir()

    def publish(stamp: str, documents):
        d = cfgdir / f"..{stamp}"
        d.mkdir()
        (d / "remora.yaml").write_text(harness.documents_yaml(documents))
        tmp = cfgdir / "..data_tmp"
        os.symlink(d.name, tmp)
        os.replace(tmp, cfgdir / "..data")
        if not (cfgdir / "remora.yaml").is_symlink():
            os.symlink("..data/remora.yaml", cfgdir / "remora.yaml")

    publish("v1", docs)
    px = env.run_proxy([cfgdir / "remora.yaml"], ports)
    assert served_by(px.port) == "blue"
    docs[-1] = harness.virtual_service("shop", ["shop.local"], "green.local")
    publish("v2", docs)
    deadline = time.monotonic() + 6
    while served_by(px.port) != "green":
        assert time.monotonic() < deadline, "the swapped configuration was not picked up"
        time.sleep(0.2)
    st, _, body = admin(px, "GET", "/config/history")
    assert json.loads(body)["history"][-1]["cause"] == "file change", body
