"""Process lifecycle (SPEC §1, §6): SIGTERM/SIGINT exit 0 within a few seconds, an
in-flight request completes during the drain, a port that cannot be bound exits 3."""
import signal
import socket
import threading
import time

import pytest

from harness import http_request


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_0_promptly(env, sig):
    e = env.echo()
    px = env.proxy({"backend.local": e.port})
    assert http_request(px.port, "GET", "/", host="backend.local").status == 200
    t0 = time.monotonic()
    px.proc.signal(sig)
    rc = px.proc.wait(10)
    took = time.monotonic() - t0
    assert rc is not None, f"proxy still running 10 s after {sig.name}"
    assert rc == 0, f"exit code {rc} after {sig.name}"
    assert took < 5, f"exit took {took:.1f}s after {sig.name}"


def test_inflight_request_completes_on_sigterm(env):
    e = env.echo()
    px = env.proxy({"backend.local": e.port})
    result = {}

    def slow():
        try:
            result["r"] = http_request(px.port, "GET", "/delay/1000", host="backend.local")
        except Exception as ex:  # reported below
            result["err"] = ex

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.3)
    px.proc.signal(signal.SIGTERM)
    th.join(10)
    rc = px.proc.wait(10)
    assert "err" not in result, f"in-flight request failed during drain: {result.get('err')!r}"
    assert result["r"].status == 200, result["r"]
    assert rc == 0, f"exit code {rc}"


def test_port_in_use_exits_3(env):
    e = env.echo()
    docs, ports = env.proxy_docs({"backend.local": e.port})
    cfg = env.write(docs, "busy.yaml")
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", ports["listen"]))
    holder.listen(1)
    try:
        p = env.pm.start("remora-busy", [env.bin, "run", "-c", cfg])
        rc = p.wait(10)
        assert rc is not None, "proxy kept running although its listener port is taken"
        assert rc == 3, f"exit code {rc}, want 3\n{p.describe()}"
        assert str(ports["listen"]) in p.stderr_text(), f"stderr does not name the port:\n{p.describe()}"
    finally:
        holder.close()
