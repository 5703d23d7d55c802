"""The upstream dies (SIGKILL) in the middle of an exchange (SPEC §6):
- after the response started: the downstream connection is closed, so curl ends with a
  partial-transfer error instead of hanging or seeing a complete response;
- before the response started: 502.
Either way the proxy keeps serving."""
import os
import signal
import subprocess
import time

from harness import http_request


def _proxy_with_flaky(env, flaky_port):
    good = env.echo(name="good")
    px = env.proxy({"flaky.local": flaky_port, "good.local": good.port},
                   routes=[("flaky", ["flaky.local"], "flaky.local", None),
                           ("good", ["good.local"], "good.local", None)])
    return px


def _curl_bg(px, tmp_path):
    out = tmp_path / "partial.bin"
    p = subprocess.Popen(["curl", "-sS", "--max-time", "20", "-H", "Host: flaky.local",
                          "-o", str(out), "-w", "%{http_code}", px.url("/")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    return p, out


def _assert_still_serving(px):
    assert px.proc.alive(), "proxy died"
    r = http_request(px.port, "GET", "/", host="good.local")
    assert r.status == 200 and r.header("x-echo-name") == "good", r


def test_kill_upstream_mid_response_closes_downstream(env, tmp_path):
    flaky = env.stall_backend("headers")  # sends a head announcing 1,000,000 bytes + 65,536
    px = _proxy_with_flaky(env, flaky.port)
    curl, out = _curl_bg(px, tmp_path)
    try:
        line = flaky.proc.read_line(10)
        assert line == "SENT", f"backend did not get the request: {line!r}"
        # wait until the client has received part of the body (bodies stream)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size == 0):
            time.sleep(0.05)
        assert out.exists() and out.stat().st_size > 0, "no body bytes reached the client"
        assert curl.poll() is None, "curl finished before the upstream was killed"
        os.kill(flaky.proc.pid, signal.SIGKILL)
        t0 = time.monotonic()
        try:
            stdout, stderr = curl.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("curl still waiting 10 s after the upstream died: the proxy "
                                 "did not close the downstream connection")
        took = time.monotonic() - t0
    finally:
        if curl.poll() is None:
            curl.kill()
            curl.wait()
    assert stdout == b"200", f"status seen by curl: {stdout!r}"
    # 18: partial file (closed with bytes outstanding); 56: failure receiving (reset)
    assert curl.returncode in (18, 56), \
        f"curl rc={curl.returncode} (want 18 or 56) stderr={stderr.decode()!r}"
    assert 0 < out.stat().st_size < 1_000_000
    assert took < 5, f"downstream closed {took:.1f}s after the upstream died"
    _assert_still_serving(px)


def test_kill_upstream_before_response_gives_502(env, tmp_path):
    flaky = env.stall_backend("none")  # reads the request, never answers
    px = _proxy_with_flaky(env, flaky.port)
    curl, out = _curl_bg(px, tmp_path)
    try:
        line = flaky.proc.read_line(10)
        assert line == "GOT", f"backend did not get the request: {line!r}"
        time.sleep(0.2)
        assert curl.poll() is None, "curl finished before the upstream was killed"
        os.kill(flaky.proc.pid, signal.SIGKILL)
        t0 = time.monotonic()
        try:
            stdout, stderr = curl.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("curl still waiting 10 s after the upstream died")
        took = time.monotonic() - t0
    finally:
        if curl.poll() is None:
            curl.kill()
            curl.wait()
    assert curl.returncode == 0, f"curl rc={curl.returncode} stderr={stderr.decode()!r}"
    assert stdout == b"502", f"status seen by curl: {stdout!r} (want 502)"
    assert took < 5
    _assert_still_serving(px)
