"""The backend and the proxies under test: their configurations, versions and processes.

Every proxy runs ONE worker with access logs off, keeps a pool of keep-alive
connections to the backend, accepts at least MAX_CONNECTIONS client connections,
appends X-Forwarded-For and (where the proxy can) adds an X-Request-ID, as a mesh
sidecar does. The backend is one nginx worker answering every request with a small
fixed body; it is also the "direct" target that latency is compared against.

Adding a proxy: subclass Proxy (name, version(), command(), the `protocols` it can
run, and endpoints() if it needs listeners of its own for some), add it to all_proxies.

TLS: an instance started with a certificate (Proxy.start(..., tls=TlsFiles)) also
listens on a TLS port (`extra["tls"]`) that terminates TLS (ALPN h2 and http/1.1,
TLS 1.2 and 1.3, session tickets on: each proxy's defaults) and proxies to the same
HTTP/1.1 backend. make_certificate() writes the one certificate they all serve.
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import procfs

HOST = "127.0.0.1"
AUTHORITY = "backend.local"   # the Host header every request carries
# the hosts the HTTP/2-upstream scenarios send to (:authority), each routed to a backend
# that speaks h2c: where a proxy listens on one port for all, it routes by this
AUTHORITY_H2 = "backend-h2.local"       # the backend nginx's h2c port
AUTHORITY_GRPC = "backend-grpc.local"   # etcd's gRPC port
MAX_CONNECTIONS = 12000       # > the 10 000 idle connections the memory scenario opens
_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
FD_LIMIT = 65536 if _hard == resource.RLIM_INFINITY else min(_hard, 65536)  # 20 000 here
BACKEND_BODY = "ok\n"
# the backend's stub_status (on its HTTP/1.1 port): connections it accepted so far
BACKEND_STATUS_PATH = "/bench-status"


def free_port() -> int:
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


@dataclass(frozen=True)
class TlsFiles:
    """The certificate every proxy's TLS listener serves (make_certificate)."""
    cert: Path                # PEM certificate (self-signed)
    key: Path                 # PEM private key
    pem: Path                 # certificate + key in one file (HAProxy's `crt`)
    describe: str             # for RESULTS.md


def make_certificate(d: Path) -> TlsFiles:
    """One ECDSA P-256 self-signed certificate and key (openssl command line), made anew
    at each run in `d`. The clients (h2load) do not verify it."""
    d.mkdir(parents=True, exist_ok=True)
    cert, key, pem = d / "cert.pem", d / "key.pem", d / "cert-key.pem"
    cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", str(key), "-out", str(cert), "-days", "7", "-subj", f"/CN={AUTHORITY}",
           "-addext", f"subjectAltName=DNS:{AUTHORITY},IP:{HOST}"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"cannot make the TLS certificate ({e}): the TLS scenarios need the openssl command")
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr}")
    pem.write_text(cert.read_text() + key.read_text())
    return TlsFiles(cert, key, pem, f"ECDSA P-256, self-signed, `CN={AUTHORITY}` (made with `openssl req -x509 "
                                    f"-newkey ec -pkeyopt ec_paramgen_curve:prime256v1` at the start of the run)")


def first_line(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({e})"
    out = (p.stdout + p.stderr).strip().splitlines()
    return out[0].strip() if out else "unknown"


@dataclass(frozen=True)
class BackendPorts:
    """Where the backends listen; every proxy is configured with all three."""
    http1: int                # nginx, HTTP/1.1
    h2c: int                  # the same nginx, h2c prior knowledge (`listen ... http2`)
    grpc: int                 # etcd's client port: gRPC over h2c (started only for the grpc scenario)


@dataclass(frozen=True)
class Endpoint:
    """Where a scenario sends its load, and the :authority / Host it names."""
    port: int
    authority: str


class Running:
    """A started process (in a session of its own) listening on `port` (HTTP/1.1);
    `endpoints` maps each protocol (scenarios.Scenario.protocol) the process serves to
    the port and authority to use for it."""

    def __init__(self, name: str, port: int, cmd: list, log: Path, env: dict | None = None,
                 endpoints: dict[str, Endpoint] | None = None, scratch: Path | None = None):
        self.name, self.port, self.log = name, port, log
        self.endpoints = {"http1": Endpoint(port, AUTHORITY), **(endpoints or {})}
        self.scratch = scratch     # a directory removed when the process is stopped
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
        """Until every port it serves on accepts connections."""
        deadline = time.monotonic() + timeout
        for port in sorted({self.port} | {e.port for e in self.endpoints.values()}):
            while True:
                self.check()
                try:
                    socket.create_connection((HOST, port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.name}: nothing listening on {port} after {timeout}s")
                    time.sleep(0.05)

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
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


class Backend:
    """One nginx worker: HTTP/1.1 on `ports.http1`, h2c prior knowledge on `ports.h2c`
    (nginx 1.22: a plain-text `listen ... http2` port speaks HTTP/2 only, no Upgrade,
    no HTTP/1.1), the same 3-byte answer on both; BACKEND_STATUS_PATH: its stub_status
    (connections accepted, read by tls-handshakes)."""
    name = "backend"
    label = "direct (no proxy)"
    binary = shutil.which("nginx") or "/usr/sbin/nginx"

    def version(self) -> str:
        return first_line([self.binary, "-v"]).replace("nginx version: ", "")

    def start(self, tmp: Path, ports: BackendPorts) -> Running:
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
    # also the HTTP/2 limits (http2_max_requests and http2_idle_timeout are gone since 1.19.7)
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    http2_max_concurrent_streams 512;
    server {{
        listen {HOST}:{ports.http1} backlog=4096;
        listen {HOST}:{ports.h2c} http2 backlog=4096;
        location / {{ default_type text/plain; return 200 "{BACKEND_BODY.encode('unicode_escape').decode()}"; }}
        location = {BACKEND_STATUS_PATH} {{ stub_status; }}
    }}
}}
""")
        return Running(self.name, ports.http1, [self.binary, "-c", conf], tmp / "backend.log",
                       endpoints={"h2c-h2": Endpoint(ports.h2c, AUTHORITY)})


class GrpcBackend:
    """The gRPC backend: etcd (Debian's etcd-server, grpc-go), one node, GOMAXPROCS=1
    (one core, as the other processes get one worker), gRPC over h2c on its client port.
    The call measured is the standard health check, /grpc.health.v1.Health/Check, which
    etcd registers (status SERVING for the service ""): a real unary gRPC call answered
    by grpc-go, with a 7-byte response message and `grpc-status: 0` in the trailers, and
    no disk or raft work per call."""
    name = "grpc-backend"
    binary = shutil.which("etcd") or "/usr/bin/etcd"
    PATH = "/grpc.health.v1.Health/Check"
    REQUEST = b"\x00\x00\x00\x00\x00"     # gRPC frame: uncompressed, empty HealthCheckRequest
    RESPONSE = b"\x00\x00\x00\x00\x02\x08\x01"   # HealthCheckResponse{status: SERVING}

    def version(self) -> str:
        return first_line([self.binary, "--version"]).replace("etcd Version: ", "etcd ")

    def start(self, tmp: Path, port: int) -> Running:
        if not os.path.exists(self.binary):
            raise RuntimeError(f"etcd not found ({self.binary}): the grpc scenario needs Debian's etcd-server "
                               f"(bench/run installs it)")
        # its data directory (WAL files preallocated, ~120 MB) goes away when it stops
        data = Path(tempfile.mkdtemp(prefix="bench-etcd-"))
        peer = free_port()
        env = dict(os.environ, GOMAXPROCS="1")
        cmd = [self.binary, "--name", "bench", "--data-dir", data / "data", "--log-level", "error",
               "--listen-client-urls", f"http://{HOST}:{port}", "--advertise-client-urls", f"http://{HOST}:{port}",
               "--listen-peer-urls", f"http://{HOST}:{peer}", "--initial-advertise-peer-urls",
               f"http://{HOST}:{peer}", "--initial-cluster", f"bench=http://{HOST}:{peer}"]
        return Running(self.name, port, cmd, tmp / f"{self.name}.log", env,
                       endpoints={"grpc": Endpoint(port, AUTHORITY_GRPC)}, scratch=data)


class Proxy:
    name = "?"
    label = "?"
    # the scenarios a proxy runs (scenarios.Scenario.protocol): "http1", "h2c" (h2c prior
    # knowledge from the client, HTTP/1.1 to the backend), "h2c-h2" (h2c both sides),
    # "grpc" (unary gRPC, h2c both sides)
    protocols = {"http1"}
    per_request = "?"          # what it adds to each request, for RESULTS.md
    settings = "?"             # the settings that make it comparable, for RESULTS.md
    h2_settings = ""           # how it is set up for the HTTP/2 scenarios, for RESULTS.md
    tls_settings = ""          # how its TLS listener is set up ("https", "tls" protocols), for RESULTS.md
    extra_listeners: tuple[str, ...] = ()   # listeners besides the main one, each on a free port

    def version(self) -> str:
        raise NotImplementedError

    def command(self, d: Path, listen: int, extra: dict[str, int], backend: BackendPorts,
                tls: TlsFiles | None = None) -> list:
        """Write the configuration into directory `d`, return the command line. `listen`:
        the main listener's port; `extra`: a free port for each of `extra_listeners`, and
        with `tls` (the certificate) one more, extra["tls"], for the TLS listener."""
        raise NotImplementedError

    def endpoints(self, listen: int, extra: dict[str, int]) -> dict[str, Endpoint]:
        """Where each protocol's load goes; by default all on the main listener, the
        HTTP/2-upstream scenarios routed by authority; the TLS scenarios on the TLS port."""
        return {"h2c": Endpoint(listen, AUTHORITY), "h2c-h2": Endpoint(listen, AUTHORITY_H2),
                "grpc": Endpoint(listen, AUTHORITY_GRPC), **self.tls_endpoints(extra)}

    @staticmethod
    def tls_endpoints(extra: dict[str, int]) -> dict[str, Endpoint]:
        if "tls" not in extra:
            return {}
        return {"https": Endpoint(extra["tls"], AUTHORITY), "tls": Endpoint(extra["tls"], AUTHORITY)}

    def start(self, tmp: Path, listen: int, backend: BackendPorts, env: dict | None = None,
              tag: str = "", tls: TlsFiles | None = None) -> Running:
        """Start an instance; `tag` tells several instances' directories and logs apart;
        with `tls`, the instance also serves TLS on a port of its own."""
        d = tmp / f"{self.name}{tag}"
        d.mkdir(exist_ok=True)
        extra = {name: free_port() for name in self.extra_listeners}
        if tls is not None:
            extra["tls"] = free_port()
        eps = {k: v for k, v in self.endpoints(listen, extra).items() if k in self.protocols}
        return Running(f"{self.name}{tag}", listen, self.command(d, listen, extra, backend, tls),
                       tmp / f"{self.name}{tag}.log", env, eps)


class Remora(Proxy):
    name = "remora"
    label = "Remora"
    protocols = {"http1", "h2c", "h2c-h2", "grpc", "https", "tls"}
    per_request = "X-Forwarded-For, X-Forwarded-Proto, X-Request-ID (random UUID)"
    settings = (f"`workers: 1`, access log off, mesh outbound listener, STATIC ServiceEntry + "
                f"VirtualService, `limits.maxConnections: {MAX_CONNECTIONS}`")
    h2_settings = (f"h2c on the same outbound listener (preface detected); `{AUTHORITY_H2}`: a second "
                   f"STATIC ServiceEntry, port `protocol: HTTP2`; `{AUTHORITY_GRPC}`: a third, "
                   f"`protocol: GRPC`; each with its VirtualService")
    tls_settings = ("a Gateway `istio-system/bench-gw` (selector `istio: ingressgateway`, the Proxy's label), "
                    "one server: port `protocol: HTTPS`, `bind: 127.0.0.1`, `hosts: [\"*\"]`, `tls: {mode: SIMPLE, "
                    "serverCertificate, privateKey}` (files); a VirtualService `gateways: [istio-system/bench-gw]`, "
                    f"`hosts: [\"*\"]` routing to `{AUTHORITY}`. Its defaults: ALPN h2 and http/1.1, TLS 1.2–1.3, "
                    "session tickets on")

    def __init__(self, binary: Path):
        self.binary = binary

    def version(self) -> str:
        st = os.stat(self.binary)
        built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(st.st_mtime))
        swift = first_line(["swift", "--version"])
        swift = swift[swift.find("Swift version"):].split(" (")[0] if "Swift version" in swift else "Swift"
        return f"release build of this tree, linked {built} ({swift})"

    @staticmethod
    def service(name: str, host: str, port_name: str, protocol: str, port: int) -> str:
        """A STATIC ServiceEntry (port 80 of `host`, endpoint HOST:port) and the
        VirtualService that routes `host` to it."""
        return f"""---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{host}]
  ports: [{{number: 80, name: {port_name}, protocol: {protocol}}}]
  resolution: STATIC
  endpoints: [{{address: {HOST}, ports: {{{port_name}: {port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{host}]
  http:
  - route:
    - destination: {{host: {host}, port: {{number: 80}}}}
"""

    @staticmethod
    def gateway(port: int, tls: TlsFiles) -> str:
        """The TLS listener: a Gateway whose one server terminates TLS (SIMPLE, certificate
        files) on HOST:port, and the VirtualService bound to it that sends every host to
        the backend's ServiceEntry."""
        return f"""---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: bench-gw, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: https, protocol: HTTPS}}
    bind: {HOST}
    hosts: ["*"]
    tls: {{mode: SIMPLE, serverCertificate: {tls.cert}, privateKey: {tls.key}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bench-gw, namespace: istio-system}}
spec:
  hosts: ["*"]
  gateways: [istio-system/bench-gw]
  http:
  - route:
    - destination: {{host: {AUTHORITY}, port: {{number: 80}}}}
"""

    def command(self, d: Path, listen: int, extra: dict[str, int], backend: BackendPorts,
                tls: TlsFiles | None = None) -> list:
        admin, health, metrics = free_port(), free_port(), free_port()
        conf = d / "remora.yaml"
        # the label selects the Gateway (selector istio: ingressgateway)
        conf.write_text(f"""apiVersion: remora.dev/v1alpha1
kind: Proxy
metadata: {{name: bench, labels: {{istio: ingressgateway}}}}
spec:
  workers: 1
  admin: {{address: {HOST}, port: {admin}}}
  health: {{address: {HOST}, port: {health}}}
  metrics: {{address: {HOST}, port: {metrics}}}
  meshListeners:
    outbound: {{address: {HOST}, port: {listen}}}
  accessLog: {{path: "off"}}
  limits: {{maxConnections: {MAX_CONNECTIONS}}}
""" + self.service("backend", AUTHORITY, "http", "HTTP", backend.http1)
    + self.service("backend-h2", AUTHORITY_H2, "http2", "HTTP2", backend.h2c)
    + self.service("backend-grpc", AUTHORITY_GRPC, "grpc", "GRPC", backend.grpc)
    + (self.gateway(extra["tls"], tls) if tls else ""))
        return [self.binary, "run", "-c", conf]


class HAProxy(Proxy):
    name = "haproxy"
    label = "HAProxy"
    protocols = {"http1", "h2c", "h2c-h2", "grpc", "https", "tls"}
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    per_request = "X-Forwarded-For, X-Request-ID (uuid)"
    settings = (f"`nbthread 1`, no log, `http-keep-alive`, `http-reuse always`, `maxconn {MAX_CONNECTIONS}` "
                f"(`ulimit-n {FD_LIMIT}` + `no strict-limits`: the fd hard limit is below 2 × maxconn)")
    h2_settings = ("h2c on the main `bind` (HAProxy switches a connection to HTTP/2 when it starts with "
                   "the preface); HTTP/2 upstreams: a frontend each on a port of its own (`bind ... proto "
                   "h2`, the same forwardfor/x-request-id rules) whose backend has `server ... proto h2`, so "
                   "that the HTTP/1.1 frontend stays as it was (no Host-based `use_backend`)")
    tls_settings = ("a frontend of its own, `bind ... ssl crt cert-key.pem alpn h2,http/1.1` (the same "
                    "forwardfor/x-request-id rules, the same backend `be`); defaults otherwise: TLS 1.2–1.3, "
                    "session tickets on, its session cache (`tune.ssl.cachesize` 20 000)")
    extra_listeners = ("h2", "grpc")

    def version(self) -> str:
        m = re.search(r"version (\S+)", first_line([self.binary, "-v"]))
        return m.group(1) if m else "unknown"

    def endpoints(self, listen: int, extra: dict[str, int]) -> dict[str, Endpoint]:
        return {"h2c": Endpoint(listen, AUTHORITY), "h2c-h2": Endpoint(extra["h2"], AUTHORITY_H2),
                "grpc": Endpoint(extra["grpc"], AUTHORITY_GRPC), **self.tls_endpoints(extra)}

    def command(self, d: Path, listen: int, extra: dict[str, int], backend: BackendPorts,
                tls: TlsFiles | None = None) -> list:
        conf = d / "haproxy.cfg"
        tls_frontend = f"""
# TLS termination (ALPN h2 and http/1.1), to the HTTP/1.1 backend
frontend fe_tls
    bind {HOST}:{extra["tls"]} ssl crt {tls.pem} alpn h2,http/1.1
{{rules}}
    default_backend be
""" if tls else ""
        rules = """    option forwardfor
    http-request set-header x-request-id %[uuid]"""
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

# HTTP/1.1, and h2c prior knowledge: a connection that starts with the HTTP/2 preface
# is switched to HTTP/2 (HAProxy >= 2.0; `option disable-h2-upgrade` would turn it off)
frontend fe
    bind {HOST}:{listen}
{rules}
    default_backend be

backend be
    server s1 {HOST}:{backend.http1}

# h2c both sides: the backend nginx's HTTP/2 port
frontend fe_h2
    bind {HOST}:{extra["h2"]} proto h2
{rules}
    default_backend be_h2

backend be_h2
    server s1 {HOST}:{backend.h2c} proto h2

# unary gRPC: etcd
frontend fe_grpc
    bind {HOST}:{extra["grpc"]} proto h2
{rules}
    default_backend be_grpc

backend be_grpc
    server s1 {HOST}:{backend.grpc} proto h2
""" + tls_frontend.replace("{rules}", rules))
        return [self.binary, "-db", "-f", conf]


class Nginx(Proxy):
    name = "nginx"
    label = "nginx"
    # no "h2c-h2": nginx cannot proxy to an HTTP/2 upstream (proxy_http_version stops at
    # 1.1); grpc_pass speaks HTTP/2 to the upstream but only for gRPC
    protocols = {"http1", "h2c", "grpc", "https", "tls"}
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    per_request = "X-Forwarded-For, X-Request-ID ($request_id)"
    settings = ("`worker_processes 1` (+ master), `access_log off`, upstream `keepalive 512`, "
                "`proxy_http_version 1.1`")
    h2_settings = ("h2c on a second port (`listen ... http2`: in nginx 1.22 a plain-text HTTP/2 port "
                   "speaks only HTTP/2), proxied as for HTTP/1.1; gRPC: a `server_name "
                   f"{AUTHORITY_GRPC}` on that port with `grpc_pass` to an upstream with `keepalive 512` "
                   "(nginx sends one stream at a time on each upstream connection); no HTTP/2 upstream "
                   "otherwise, so no h2c-h2")
    tls_settings = ("a third port in the same `server`, `listen ... ssl http2` (ALPN h2 and http/1.1), "
                    "`ssl_certificate`/`ssl_certificate_key`, `ssl_protocols TLSv1.2 TLSv1.3` (1.22's default "
                    "stops at TLS 1.2: without it every client would get TLS 1.2); defaults otherwise: session "
                    "tickets on, no session cache (`ssl_session_cache none`)")
    extra_listeners = ("h2c",)

    def version(self) -> str:
        return first_line([self.binary, "-v"]).replace("nginx version: ", "")

    def endpoints(self, listen: int, extra: dict[str, int]) -> dict[str, Endpoint]:
        return {"h2c": Endpoint(extra["h2c"], AUTHORITY), "grpc": Endpoint(extra["h2c"], AUTHORITY_GRPC),
                **self.tls_endpoints(extra)}

    def command(self, d: Path, listen: int, extra: dict[str, int], backend: BackendPorts,
                tls: TlsFiles | None = None) -> list:
        conf = d / "nginx.conf"
        # TLS: a third port in the same server (ALPN offers h2 and http/1.1 on an `ssl http2` port)
        tls_listen = f"""
        listen {HOST}:{extra["tls"]} ssl http2 backlog=4096;
        ssl_certificate {tls.cert};
        ssl_certificate_key {tls.key};
        ssl_protocols TLSv1.2 TLSv1.3;""" if tls else ""
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
    # the h2c scenarios keep up to 8 x 32 requests in flight, each on an upstream
    # connection of its own: the pool holds them all (64 would close and reopen some)
    upstream be {{
        server {HOST}:{backend.http1};
        keepalive 512;
        keepalive_requests 100000000;
        keepalive_timeout 120s;
    }}
    upstream grpc_be {{
        server {HOST}:{backend.grpc};
        keepalive 512;
        keepalive_requests 100000000;
        keepalive_timeout 120s;
    }}
    server {{
        listen {HOST}:{listen} backlog=4096;
        listen {HOST}:{extra["h2c"]} http2 backlog=4096;{tls_listen}
        location / {{
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Request-ID $request_id;
        }}
    }}
    server {{
        listen {HOST}:{extra["h2c"]} http2;
        server_name {AUTHORITY_GRPC};
        location / {{
            grpc_pass grpc://grpc_be;
            grpc_set_header Host $host;
            grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            grpc_set_header X-Request-ID $request_id;
        }}
    }}
}}
""")
        return [self.binary, "-c", conf]


class Nghttpx(Proxy):
    name = "nghttpx"
    label = "nghttpx"
    protocols = {"http1", "h2c", "h2c-h2", "grpc", "https", "tls"}
    binary = shutil.which("nghttpx") or "/usr/sbin/nghttpx"
    per_request = "X-Forwarded-For, X-Forwarded-Proto (no request-id feature)"
    settings = ("`--single-process --single-thread --workers=1`, no access log, backend keep-alive "
                "120 s, `--no-via`")
    h2_settings = (f"h2c on the same `--frontend` (`no-tls` serves HTTP/1.1 and h2c); HTTP/2 upstreams: "
                   f"`--backend=...;{AUTHORITY_H2}/;proto=h2` and `...;{AUTHORITY_GRPC}/;proto=h2`, "
                   f"routed by authority")
    tls_settings = ("a second `--frontend=127.0.0.1,PORT` (TLS: no `no-tls`) with the key and certificate as "
                    "the positional arguments, `--no-ocsp` (no OCSP fetch helper for a self-signed certificate); "
                    "defaults otherwise: ALPN h2 and http/1.1, TLS 1.2–1.3, session tickets on (keys it makes "
                    "itself)")

    def version(self) -> str:
        return first_line([self.binary, "--version"]).replace("nghttpx ", "")

    def command(self, d: Path, listen: int, extra: dict[str, int], backend: BackendPorts,
                tls: TlsFiles | None = None) -> list:
        # TLS: a frontend without `no-tls`; the private key and certificate are positional
        tls_args = [f"--frontend={HOST},{extra['tls']}", "--no-ocsp", tls.key, tls.cert] if tls else []
        # one process, one thread (accept and proxying on the same loop, like the others)
        return [self.binary, "--conf=/dev/null", "--single-process", "--single-thread", "--workers=1",
                f"--frontend={HOST},{listen};no-tls", f"--backend={HOST},{backend.http1};;proto=http/1.1",
                f"--backend={HOST},{backend.h2c};{AUTHORITY_H2}/;proto=h2",
                f"--backend={HOST},{backend.grpc};{AUTHORITY_GRPC}/;proto=h2",
                "--add-x-forwarded-for", "--no-via", "--no-server-rewrite",
                "--backend-keep-alive-timeout=120s", "--frontend-keep-alive-timeout=120s",
                f"--rlimit-nofile={FD_LIMIT}", f"--backlog=4096",
                f"--pid-file={d}/nghttpx.pid", f"--errorlog-file={d}/error.log"] + tls_args


def tool_versions() -> str:
    wrk = first_line(["wrk", "-v"]).split(" [")[0].replace("debian/", "")
    return f"{wrk}, h2load {first_line(['h2load', '--version']).replace('h2load ', '')}"


def openssl_version() -> str:
    """The OpenSSL the TLS clients (h2load) and, on Debian, HAProxy, nginx and nghttpx use."""
    return first_line(["openssl", "version"])


def all_proxies(remora_binary: Path) -> list[Proxy]:
    return [Remora(remora_binary), HAProxy(), Nginx(), Nghttpx()]
