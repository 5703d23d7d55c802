"""The backend and the proxies under test: their configurations, versions and processes.

Every proxy runs ONE worker with access logs off, keeps a pool of keep-alive
connections to the backend, accepts at least MAX_CONNECTIONS client connections,
appends X-Forwarded-For and (where the proxy can) adds an X-Request-ID, as a mesh
sidecar does. The backend is one nginx worker answering every request with a small
fixed body; it is also the "direct" target that latency is compared against.

Adding a proxy: subclass Proxy (name, version(), command()), add it to PROXIES.
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import procfs

HOST = "127.0.0.1"
AUTHORITY = "backend.local"   # the Host header every request carries
MAX_CONNECTIONS = 12000       # > the 10 000 idle connections the memory scenario opens
_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
FD_LIMIT = 65536 if _hard == resource.RLIM_INFINITY else min(_hard, 65536)  # 20 000 here
BACKEND_BODY = "ok\n"


def free_port() -> int:
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def first_line(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({e})"
    out = (p.stdout + p.stderr).strip().splitlines()
    return out[0].strip() if out else "unknown"


class Running:
    """A started process (in a session of its own) listening on `port`."""

    def __init__(self, name: str, port: int, cmd: list, log: Path, env: dict | None = None):
        self.name, self.port, self.log = name, port, log
        self._log = open(log, "wb")
        self.popen = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                                      stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True)
        self.sid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check(self) -> None:
        if not self.alive():
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; log {self.log}:\n{tail}")

    def wait_listening(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name}: nothing listening on {self.port} after {timeout}s")

    def cpu_seconds(self, precise: bool = False) -> float:
        """user+sys of all the processes (precise: the scheduler's ns count, see procfs)."""
        return procfs.cpu_seconds_sched(self.sid) if precise else procfs.cpu_seconds(self.sid)

    def rss_kb(self) -> int:
        return procfs.rss_kb(self.sid)

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.sid, signal.SIGKILL)
            except OSError:
                pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


class Backend:
    name = "backend"
    label = "direct (no proxy)"
    binary = shutil.which("nginx") or "/usr/sbin/nginx"

    def version(self) -> str:
        return first_line([self.binary, "-v"]).replace("nginx version: ", "")

    def start(self, tmp: Path, port: int) -> Running:
        d = tmp / "backend"
        d.mkdir()
        conf = d / "nginx.conf"
        conf.write_text(f"""worker_processes 1;
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log;
worker_rlimit_nofile {MAX_CONNECTIONS + 1000};
events {{ worker_connections {MAX_CONNECTIONS}; }}
http {{
    access_log off;
    client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
    uwsgi_temp_path {d}; scgi_temp_path {d};
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen {HOST}:{port} backlog=4096;
        location / {{ default_type text/plain; return 200 "{BACKEND_BODY.encode('unicode_escape').decode()}"; }}
    }}
}}
""")
        return Running(self.name, port, [self.binary, "-c", conf], tmp / "backend.log")


class Proxy:
    name = "?"
    label = "?"
    protocols = {"http1"}      # scenarios a proxy can run (see scenarios.Scenario.protocol)
    per_request = "?"          # what it adds to each request, for RESULTS.md
    settings = "?"             # the settings that make it comparable, for RESULTS.md

    def version(self) -> str:
        raise NotImplementedError

    def command(self, d: Path, listen: int, backend: int) -> list:
        """Write the configuration into directory `d`, return the command line."""
        raise NotImplementedError

    def start(self, tmp: Path, listen: int, backend: int, env: dict | None = None) -> Running:
        d = tmp / self.name
        d.mkdir(exist_ok=True)
        return Running(self.name, listen, self.command(d, listen, backend), tmp / f"{self.name}.log", env)


class Remora(Proxy):
    name = "remora"
    label = "Remora"
    per_request = "X-Forwarded-For, X-Forwarded-Proto, X-Request-ID (random UUID)"
    settings = (f"`workers: 1`, access log off, mesh outbound listener, STATIC ServiceEntry + "
                f"VirtualService, `limits.maxConnections: {MAX_CONNECTIONS}`")

    def __init__(self, binary: Path):
        self.binary = binary

    def version(self) -> str:
        st = os.stat(self.binary)
        built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(st.st_mtime))
        swift = first_line(["swift", "--version"])
        swift = swift[swift.find("Swift version"):].split(" (")[0] if "Swift version" in swift else "Swift"
        return f"release build of this tree, linked {built} ({swift})"

    def command(self, d: Path, listen: int, backend: int) -> list:
        admin, health, metrics = free_port(), free_port(), free_port()
        conf = d / "remora.yaml"
        conf.write_text(f"""apiVersion: remora.dev/v1alpha1
kind: Proxy
metadata: {{name: bench}}
spec:
  workers: 1
  admin: {{address: {HOST}, port: {admin}}}
  health: {{address: {HOST}, port: {health}}}
  metrics: {{address: {HOST}, port: {metrics}}}
  meshListeners:
    outbound: {{address: {HOST}, port: {listen}}}
  accessLog: {{path: "off"}}
  limits: {{maxConnections: {MAX_CONNECTIONS}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: backend, namespace: default}}
spec:
  hosts: [{AUTHORITY}]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: {HOST}, ports: {{http: {backend}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: backend, namespace: default}}
spec:
  hosts: [{AUTHORITY}]
  http:
  - route:
    - destination: {{host: {AUTHORITY}, port: {{number: 80}}}}
""")
        return [self.binary, "run", "-c", conf]


class HAProxy(Proxy):
    name = "haproxy"
    label = "HAProxy"
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    per_request = "X-Forwarded-For, X-Request-ID (uuid)"
    settings = (f"`nbthread 1`, no log, `http-keep-alive`, `http-reuse always`, `maxconn {MAX_CONNECTIONS}` "
                f"(`ulimit-n {FD_LIMIT}` + `no strict-limits`: the fd hard limit is below 2 × maxconn)")

    def version(self) -> str:
        m = re.search(r"version (\S+)", first_line([self.binary, "-v"]))
        return m.group(1) if m else "unknown"

    def command(self, d: Path, listen: int, backend: int) -> list:
        conf = d / "haproxy.cfg"
        conf.write_text(f"""global
    nbthread 1
    maxconn {MAX_CONNECTIONS}
    # HAProxy reserves 2 fds per connection (client + server); the fd hard limit here
    # (20 000) is below that for 12 000, so start anyway: idle client connections share
    # a few server connections (http-reuse always) and need ~1 fd each.
    ulimit-n {FD_LIMIT}
    no strict-limits

defaults
    mode http
    maxconn {MAX_CONNECTIONS}
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 120s

frontend fe
    bind {HOST}:{listen}
    option forwardfor
    http-request set-header x-request-id %[uuid]
    default_backend be

backend be
    server s1 {HOST}:{backend}
""")
        return [self.binary, "-db", "-f", conf]


class Nginx(Proxy):
    name = "nginx"
    label = "nginx"
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    per_request = "X-Forwarded-For, X-Request-ID ($request_id)"
    settings = ("`worker_processes 1` (+ master), `access_log off`, upstream `keepalive 64`, "
                "`proxy_http_version 1.1`")

    def version(self) -> str:
        return first_line([self.binary, "-v"]).replace("nginx version: ", "")

    def command(self, d: Path, listen: int, backend: int) -> list:
        conf = d / "nginx.conf"
        conf.write_text(f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
worker_rlimit_nofile {FD_LIMIT};
events {{ worker_connections {FD_LIMIT}; }}
http {{
    access_log off;
    client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
    uwsgi_temp_path {d}; scgi_temp_path {d};
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    upstream be {{
        server {HOST}:{backend};
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 120s;
    }}
    server {{
        listen {HOST}:{listen} backlog=4096;
        location / {{
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Request-ID $request_id;
        }}
    }}
}}
""")
        return [self.binary, "-c", conf]


class Nghttpx(Proxy):
    name = "nghttpx"
    label = "nghttpx"
    binary = shutil.which("nghttpx") or "/usr/sbin/nghttpx"
    per_request = "X-Forwarded-For, X-Forwarded-Proto (no request-id feature)"
    settings = ("`--single-process --single-thread --workers=1`, no access log, backend keep-alive "
                "120 s, `--no-via`")

    def version(self) -> str:
        return first_line([self.binary, "--version"]).replace("nghttpx ", "")

    def command(self, d: Path, listen: int, backend: int) -> list:
        # one process, one thread (accept and proxying on the same loop, like the others)
        return [self.binary, "--conf=/dev/null", "--single-process", "--single-thread", "--workers=1",
                f"--frontend={HOST},{listen};no-tls", f"--backend={HOST},{backend};;proto=http/1.1",
                "--add-x-forwarded-for", "--no-via", "--no-server-rewrite",
                "--backend-keep-alive-timeout=120s", "--frontend-keep-alive-timeout=120s",
                f"--rlimit-nofile={FD_LIMIT}", f"--backlog=4096",
                f"--pid-file={d}/nghttpx.pid", f"--errorlog-file={d}/error.log"]


def tool_versions() -> str:
    wrk = first_line(["wrk", "-v"]).split(" [")[0].replace("debian/", "")
    return f"{wrk}, h2load {first_line(['h2load', '--version']).replace('h2load ', '')}"


def all_proxies(remora_binary: Path) -> list[Proxy]:
    return [Remora(remora_binary), HAProxy(), Nginx(), Nghttpx()]
