"""Fixtures for Remora's end-to-end tests.

`env` (per test) and `module_env` (per module) hand out an Env: it starts `remora echo`,
`remora run` with a generated configuration, and Python backends, on free ports, and
kills every process it started when the test (or module) ends, pass or fail. On a
failing test the logs of every process still known are attached to the report.
All tests skip, with the reason, when the remora binary is missing.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import harness  # noqa: E402
from harness import ProcManager, free_port, wait_for_port  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        text = "\n".join(pm.describe_all() for pm in ProcManager._all if pm.procs)
        if text:
            rep.sections.append(("remora e2e process logs", text))


@pytest.fixture(scope="session")
def remora_bin() -> Path:
    path, reason = harness.find_remora()
    if path is None:
        pytest.skip(reason)
    return path


class Echo:
    def __init__(self, proc, port, name):
        self.proc, self.port, self.name = proc, port, name


class Proxy:
    def __init__(self, proc, port, ports, config_paths):
        self.proc = proc
        self.port = port
        self.ports = ports  # dict: listen/admin/health/metrics
        self.config_paths = config_paths

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class StallBackend:
    def __init__(self, proc, port):
        self.proc, self.port = proc, port


class Env:
    def __init__(self, bin_path: Path, logdir: Path):
        self.bin = bin_path
        self.dir = Path(logdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pm = ProcManager(self.dir / "logs")
        self.servers = []  # in-process backends to stop

    # -- remora echo
    def echo(self, name: str = "echo", status: int | None = None,
             tls_cert=None, tls_key=None) -> Echo:
        """tls_cert/tls_key: serve HTTPS (`--tls-cert/--tls-key`, SPEC §7)."""
        port = free_port()
        args = [self.bin, "echo", "--listen", f"127.0.0.1:{port}", "--name", name]
        if status is not None:
            args += ["--status", str(status)]
        if tls_cert is not None:
            args += ["--tls-cert", str(tls_cert)]
        if tls_key is not None:
            args += ["--tls-key", str(tls_key)]
        p = self.pm.start(f"echo-{name}", args)
        wait_for_port(port, 20, p)
        return Echo(p, port, name)

    # -- remora run
    def proxy_docs(self, services: dict, routes=None, timeout=None, workers: int = 1,
                   proxy_extra: dict | None = None, ports: dict | None = None):
        """services: {host: port or [ports]}; routes: [(vs name, hosts, dest host, timeout)].
        Default route: the first service's host to itself. (Istio, and so Remora, reject
        the wildcard host "*" on a mesh VirtualService.)"""
        ports = ports or {k: free_port() for k in ("listen", "admin", "health", "metrics")}
        docs = [harness.proxy_resource(ports["listen"], ports["admin"], ports["health"],
                                       ports["metrics"], workers=workers, extra=proxy_extra)]
        for i, (host, p) in enumerate(services.items()):
            plist = p if isinstance(p, list) else [p]
            docs.append(harness.service_entry(f"svc{i}", host, plist))
        if routes is None:
            first = next(iter(services))
            routes = [("route", [first], first, timeout)]
        for name, hosts, dest, tmo in routes:
            docs.append(harness.virtual_service(name, hosts, dest, tmo))
        return docs, ports

    def write(self, docs, name: str = "remora.yaml") -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(harness.documents_yaml(docs))
        return path

    def proxy(self, services: dict, routes=None, timeout=None, workers: int = 1,
              proxy_extra: dict | None = None, name: str = "remora") -> Proxy:
        docs, ports = self.proxy_docs(services, routes, timeout, workers, proxy_extra)
        cfg = self.write(docs, f"{name}-{ports['listen']}.yaml")
        return self.run_proxy([cfg], ports, name)

    def run_with(self, resources: list[dict], name: str = "remora") -> Proxy:
        """A proxy (free ports, access log off) serving `resources` beside its Proxy resource."""
        ports = {k: free_port() for k in ("listen", "admin", "health", "metrics")}
        docs = [harness.proxy_resource(ports["listen"], ports["admin"], ports["health"], ports["metrics"])]
        return self.run_proxy([self.write(docs + resources, f"{name}-{ports['listen']}.yaml")], ports, name)

    def run_proxy(self, config_paths: list[Path], ports: dict, name: str = "remora") -> Proxy:
        args = [self.bin, "run"]
        for c in config_paths:
            args += ["-c", c]
        p = self.pm.start(name, args)
        wait_for_port(ports["listen"], 30, p)
        return Proxy(p, ports["listen"], ports, config_paths)

    # -- other remora commands
    def run(self, *args, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin), *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    # -- python backends
    def recording_backend(self, name: str = "recorder"):
        from backends import RecordingBackend
        b = RecordingBackend(name=name)
        self.servers.append(b)
        return b

    def upgrade_backend(self, greeting: bytes = b""):
        from backends import UpgradeBackend
        b = UpgradeBackend(greeting=greeting)
        self.servers.append(b)
        return b

    def stall_backend(self, mode: str) -> StallBackend:
        p = self.pm.start(f"stall-{mode}", [sys.executable, str(HERE / "backends.py"), "stall",
                                             "--mode", mode], stdout_pipe=True)
        line = p.read_line(15)
        if not line or not line.startswith("READY "):
            raise RuntimeError(f"stall backend did not start: {line!r}\n{p.describe()}")
        return StallBackend(p, int(line.split()[1]))

    def cleanup(self):
        for s in self.servers:
            try:
                s.stop()
            except Exception:
                pass
        self.servers.clear()
        self.pm.cleanup()


@pytest.fixture
def env(remora_bin, tmp_path):
    e = Env(remora_bin, tmp_path)
    try:
        yield e
    finally:
        e.cleanup()


@pytest.fixture(scope="module")
def module_env(remora_bin, tmp_path_factory):
    e = Env(remora_bin, tmp_path_factory.mktemp("mod"))
    try:
        yield e
    finally:
        e.cleanup()

