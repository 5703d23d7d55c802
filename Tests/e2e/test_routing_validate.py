"""Routing configuration errors (SPEC §1, §2): `remora validate` lists every error, one
line each naming the resource and the field path, and exits 1; `remora run` with the
same configuration refuses to start (exit 1) with the same lines and binds nothing.

The six errors, one per VirtualService so each line can be told apart by its name:
  vs-bad-regex     an RE2 syntax error    spec.http[0].match[0].headers.userid.regex
  vs-bad-weights   weights 70 + 20 != 100 spec.http[0].route...
  vs-bad-subset    a subset no DestinationRule defines
                                          spec.http[0].route[0].destination.subset
  vs-bad-gateway   a Gateway that does not exist
                                          spec.gateways[0]
  vs-bad-duration  a timeout that is not a duration
                                          spec.http[0].timeout
  vs-bad-retryon   a retryOn token that is no Envoy condition nor status code
                                          spec.http[0].retries.retryOn
"""
from __future__ import annotations

import socket
import time

import harness
from harness import free_port

# (resource name, field path the error line must contain)
EXPECTED = [
    ("vs-bad-regex", "spec.http[0].match[0].headers.userid.regex"),
    ("vs-bad-weights", "spec.http[0].route"),
    ("vs-bad-subset", "spec.http[0].route[0].destination.subset"),
    ("vs-bad-gateway", "spec.gateways[0]"),
    ("vs-bad-duration", "spec.http[0].timeout"),
    ("vs-bad-retryon", "spec.http[0].retries.retryOn"),
]


def _vs(name: str, hosts: list[str], http: list[dict], gateways: list[str] | None = None) -> dict:
    spec: dict = {"hosts": hosts, "http": http}
    if gateways is not None:
        spec["gateways"] = gateways
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def _dest(host: str, **kw) -> dict:
    d = {"host": host, "port": {"number": 80}}
    d.update(kw)
    return d


def _config(ports: dict) -> list[dict]:
    docs = [
        harness.proxy_resource(ports["listen"], ports["admin"], ports["health"], ports["metrics"]),
        harness.gateway_resource("ingressgateway", ports["gateway"], ["*"]),
        harness.service_entry("backend", "backend.local", [18080]),
        harness.service_entry("other", "other.local", [18081]),
        harness.destination_rule("backend", "backend.local", {"v1": {"version": "v1"}}),
        # a valid VirtualService among the bad ones
        _vs("vs-good", ["good.local"], [{"route": [{"destination": _dest("backend.local", subset="v1")}]}]),
        _vs("vs-bad-regex", ["regex.local"], [{
            "match": [{"headers": {"userid": {"regex": "(unclosed"}}}],
            "route": [{"destination": _dest("backend.local")}]}]),
        _vs("vs-bad-weights", ["weights.local"], [{
            "route": [{"destination": _dest("backend.local"), "weight": 70},
                      {"destination": _dest("other.local"), "weight": 20}]}]),
        _vs("vs-bad-subset", ["subset.local"], [{
            "route": [{"destination": _dest("backend.local", subset="v9")}]}]),
        _vs("vs-bad-gateway", ["gw.local"], [{"route": [{"destination": _dest("backend.local")}]}],
            gateways=["istio-system/no-such-gateway"]),
        _vs("vs-bad-duration", ["duration.local"], [{
            "timeout": "ten seconds",
            "route": [{"destination": _dest("backend.local")}]}]),
        _vs("vs-bad-retryon", ["retryon.local"], [{
            "retries": {"attempts": 2, "retryOn": "5xx,gateway-errors"},
            "route": [{"destination": _dest("backend.local")}]}]),
    ]
    return docs


def _error_lines(text: str) -> dict[tuple[str, str], list[str]]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return {(name, path): [ln for ln in lines if name in ln and path in ln] for name, path in EXPECTED}


def _check_lines(cmd: str, rc: int, stderr: str, stdout: str) -> dict[tuple[str, str], str]:
    assert rc == 1, f"{cmd}: expected exit 1, got rc={rc}\nstdout={stdout}\nstderr={stderr}"
    found = _error_lines(stderr)
    missing = [k for k, v in found.items() if not v]
    assert not missing, (f"{cmd}: no stderr line names resource+path for {missing}\nstderr:\n{stderr}")
    dup = {k: v for k, v in found.items() if len(v) != 1}
    assert not dup, f"{cmd}: expected one line per error, got {dup}\nstderr:\n{stderr}"
    assert "vs-good" not in stderr, f"{cmd}: the valid VirtualService is reported:\n{stderr}"
    return {k: v[0] for k, v in found.items()}


def _hold(ports: list[int]) -> list[socket.socket]:
    """Listening sockets on the config's ports: a remora that binds before validating
    fails to bind (exit 3) instead of reporting the configuration errors."""
    held = []
    for p in ports:
        s = socket.socket()
        s.bind(("127.0.0.1", p))
        s.listen(1)
        held.append(s)
    return held


def test_validate_and_run_list_every_error(env):
    ports = {k: free_port() for k in ("listen", "admin", "health", "metrics", "gateway")}
    cfg = env.write(_config(ports), "routing-invalid.yaml")

    held = _hold(list(ports.values()))
    try:
        v = env.run("validate", "-c", cfg)
        v_lines = _check_lines(f"remora validate -c {cfg}", v.returncode, v.stderr, v.stdout)

        r = env.run("run", "-c", cfg, timeout=20)
        r_lines = _check_lines(f"remora run -c {cfg}", r.returncode, r.stderr, r.stdout)
    finally:
        for s in held:
            s.close()
    assert '"gateway-errors"' in v_lines[("vs-bad-retryon", "spec.http[0].retries.retryOn")], v_lines
    for k, line in v_lines.items():
        assert r_lines[k] == line, f"validate and run word the error differently:\n validate: {line}\n run:      {r_lines[k]}"
    low = r.stderr.lower()
    assert "bind" not in low and "in use" not in low, f"remora run tried to bind:\n{r.stderr}"

    # and with nothing held, run still binds nothing (checked while it runs and after)
    p = env.pm.start("remora-invalid", [env.bin, "run", "-c", cfg])
    seen_open = []
    deadline = time.monotonic() + 15
    while p.alive() and time.monotonic() < deadline:
        seen_open += [n for n, port in ports.items() if harness.port_open(port, timeout=0.05)]
        time.sleep(0.01)
    rc = p.wait(5)
    assert rc == 1, f"remora run (ports free): expected exit 1, got {rc}\n{p.describe()}"
    assert not seen_open, f"remora run with an invalid config opened {sorted(set(seen_open))}"
    for name, port in ports.items():
        assert not harness.port_open(port), f"{name} port {port} open after remora run exited"
