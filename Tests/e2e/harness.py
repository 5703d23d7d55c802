"""Process, port, config and HTTP helpers for Remora's end-to-end tests.

Standard library only. Everything a test starts goes through a ProcManager, whose
cleanup() kills every process it started (fixtures call it in their teardown, and an
atexit hook calls it for anything left over), so a failing test never leaks a proxy
or a backend.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / ".build" / "debug" / "remora"
HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------
# binary

def find_remora() -> tuple[Path | None, str]:
    """(path, reason): path is None when the binary is missing (reason says why)."""
    env = os.environ.get("REMORA_BIN")
    p = Path(env) if env else DEFAULT_BIN
    if not p.is_file():
        src = "REMORA_BIN" if env else "default debug build"
        return None, f"remora binary not found at {p} ({src}); build it or set REMORA_BIN"
    if not os.access(p, os.X_OK):
        return None, f"remora binary at {p} is not executable"
    return p, ""


# ---------------------------------------------------------------------------
# ports

_handed_out: set[int] = set()
_port_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to 0), never the same twice per run."""
    with _port_lock:
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((host, 0))
                port = s.getsockname()[1]
            finally:
                s.close()
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("could not find a free port")


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# processes

class Proc:
    def __init__(self, name: str, args: list[str], logdir: Path, env=None,
                 stdout_pipe: bool = False):
        self.name = name
        self.args = [str(a) for a in args]
        logdir.mkdir(parents=True, exist_ok=True)
        safe = name.replace("/", "_")
        self.out_path = logdir / f"{safe}.stdout.log"
        self.err_path = logdir / f"{safe}.stderr.log"
        self._out = None if stdout_pipe else open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.popen = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self._out,
            stderr=self._err,
            env=env,
            start_new_session=True,  # own process group: killpg reaches only what we started
        )
        self.pid = self.popen.pid
        self._lines_buf = b""

    # -- state
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    # -- logs
    def _tail(self, path: Path, n: int) -> str:
        try:
            data = path.read_bytes()
        except OSError:
            return ""
        lines = data.decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])

    def stderr_text(self) -> str:
        try:
            return self.err_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def describe(self, n: int = 40) -> str:
        rc = self.popen.poll()
        state = "running" if rc is None else f"exited rc={rc}"
        parts = [f"--- {self.name} (pid {self.pid}, {state}): {' '.join(self.args)}"]
        if self._out is not None:
            out = self._tail(self.out_path, n)
            if out:
                parts.append(f"[stdout tail]\n{out}")
        err = self._tail(self.err_path, n)
        if err:
            parts.append(f"[stderr tail]\n{err}")
        return "\n".join(parts)

    # -- line protocol on a piped stdout (python backends announce themselves this way)
    def read_line(self, timeout: float) -> str | None:
        assert self.popen.stdout is not None, "stdout not piped"
        deadline = time.monotonic() + timeout
        fd = self.popen.stdout.fileno()
        while b"\n" not in self._lines_buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self._lines_buf += chunk
        line, _, self._lines_buf = self._lines_buf.partition(b"\n")
        return line.decode("utf-8", "replace")

    # -- ending
    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                try:
                    self.popen.kill()
                except OSError:
                    pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for f in (self._out, self._err, self.popen.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass


class ProcManager:
    """Starts processes and kills all of them in cleanup()."""

    _all: list["ProcManager"] = []

    def __init__(self, logdir: Path):
        self.logdir = Path(logdir)
        self.procs: list[Proc] = []
        ProcManager._all.append(self)

    def start(self, name: str, args: list, env=None, stdout_pipe: bool = False) -> Proc:
        # unique log names when a test starts several processes of one kind
        n = sum(1 for p in self.procs if p.name.split("#")[0] == name)
        p = Proc(f"{name}#{n}" if n else name, args, self.logdir, env=env, stdout_pipe=stdout_pipe)
        self.procs.append(p)
        return p

    def describe_all(self) -> str:
        return "\n".join(p.describe() for p in self.procs)

    def cleanup(self) -> None:
        for p in reversed(self.procs):
            p.kill()
        self.procs.clear()


@atexit.register
def _kill_leftovers() -> None:
    for pm in ProcManager._all:
        pm.cleanup()


def wait_for_port(port: int, timeout: float = 15.0, proc: Proc | None = None,
                  host: str = "127.0.0.1") -> None:
    """Poll until something accepts on host:port; fail early if proc exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port, host):
            return
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited before {host}:{port} accepted connections\n"
                               + proc.describe())
        time.sleep(0.05)
    msg = f"nothing accepted on {host}:{port} within {timeout}s"
    if proc is not None:
        msg += "\n" + proc.describe()
    raise RuntimeError(msg)


# ---------------------------------------------------------------------------
# memory / cpu

def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime+stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is state (field 3); utime is field 14, stime field 15
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# configuration (tiny YAML writer: block style, strings double-quoted)

def _scalar(v) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))


def to_yaml(obj, indent: int = 0) -> str:
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            key = k if isinstance(k, str) and k.replace("-", "").replace("_", "").isalnum() else json.dumps(str(k))
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{key}:\n{to_yaml(v, indent + 1)}")
            elif isinstance(v, dict):
                lines.append(f"{pad}{key}: {{}}\n")
            elif isinstance(v, list):
                lines.append(f"{pad}{key}: []\n")
            else:
                lines.append(f"{pad}{key}: {_scalar(v)}\n")
        return "".join(lines)
    if isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                body = to_yaml(v, indent + 1)
                # put the first line after "- "
                first, _, rest = body.partition("\n")
                lines.append(f"{pad}- {first.lstrip()}\n{rest}")
            else:
                lines.append(f"{pad}- {_scalar(v) if not isinstance(v, (dict, list)) else ('{}' if isinstance(v, dict) else '[]')}\n")
        return "".join(lines)
    return pad + _scalar(obj) + "\n"


def documents_yaml(docs: list[dict]) -> str:
    return "---\n".join(to_yaml(d) for d in docs)


def proxy_resource(listen: int, admin: int, health: int, metrics: int, workers: int = 1,
                   extra: dict | None = None) -> dict:
    spec = {
        "workers": workers,
        "admin": {"address": "127.0.0.1", "port": admin},
        "health": {"address": "127.0.0.1", "port": health},
        "metrics": {"address": "127.0.0.1", "port": metrics},
        "meshListeners": {"outbound": {"address": "127.0.0.1", "port": listen}},
        "accessLog": {"path": "off"},
    }
    if extra:
        spec.update(extra)
    return {"apiVersion": "remora.dev/v1alpha1", "kind": "Proxy",
            "metadata": {"name": "test"}, "spec": spec}


def service_entry(name: str, host: str, ports: list[int], addr: str = "127.0.0.1",
                  ns: str = "default", protocol: str = "HTTP", port_number: int = 80,
                  port_name: str = "http") -> dict:
    """A STATIC ServiceEntry: one service port (port_number, port_name, protocol, e.g.
    50051/"grpc"/"GRPC") whose endpoints are addr at each of `ports`."""
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "hosts": [host],
            "ports": [{"number": port_number, "name": port_name, "protocol": protocol}],
            "resolution": "STATIC",
            "endpoints": [{"address": addr, "ports": {port_name: p}} for p in ports],
        },
    }


def virtual_service(name: str, hosts: list[str], dest: str, timeout: str | None = None,
                    ns: str = "default", port_number: int = 80) -> dict:
    route: dict = {"route": [{"destination": {"host": dest, "port": {"number": port_number}}}]}
    if timeout:
        route["timeout"] = timeout
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"hosts": hosts, "http": [route]},
    }


# ---------------------------------------------------------------------------
# raw HTTP/1.1 client

class Response:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes,
                 head_raw: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.head_raw = head_raw

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.reason} headers={self.headers} body={self.body[:200]!r}>"


class ConnectionClosed(Exception):
    pass


class RawConn:
    """A client socket with a read buffer, for requests the way a test wants them."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_until(self, marker: bytes, limit: int = 1 << 20) -> bytes:
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("marker not found within limit")
            if not self._fill():
                raise ConnectionClosed(f"closed before {marker!r}; got {self.buf[:300]!r}")
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionClosed(f"closed after {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head_request: bool = False, allow_1xx: bool = False) -> Response:
        """One response. 1xx interim responses are skipped unless allow_1xx."""
        while True:
            head = self.read_until(b"\r\n\r\n")
            lines = head[:-4].split(b"\r\n")
            parts = lines[0].decode("latin-1").split(" ", 2)
            status = int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            headers = []
            for ln in lines[1:]:
                k, _, v = ln.decode("latin-1").partition(":")
                headers.append((k.strip(), v.strip()))
            r = Response(status, reason, headers, b"", head)
            if 100 <= status < 200:
                if allow_1xx or status == 101:
                    return r
                continue
            break
        if head_request or status in (204, 304):
            return r
        te = (r.header("transfer-encoding") or "").lower()
        cl = r.header("content-length")
        if "chunked" in te:
            body = b""
            while True:
                size_line = self.read_until(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    # trailers
                    while self.read_until(b"\r\n") != b"\r\n":
                        pass
                    break
                body += self.read_exact(size)
                self.read_exact(2)
            r.body = body
        elif cl is not None:
            r.body = self.read_exact(int(cl))
        else:
            while self._fill():
                pass
            r.body, self.buf = self.buf, b""
        return r

    def closed_within(self, timeout: float) -> bool:
        """True when the peer closes (EOF or reset) within timeout with no more data."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk
            return False  # got more data instead of a close
        return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def http_request(port: int, method: str = "GET", path: str = "/", host: str = "backend.local",
                 headers: list[tuple[str, str]] | None = None, body: bytes | None = None,
                 timeout: float = 10.0) -> Response:
    """One request on a fresh connection (Connection: close)."""
    c = RawConn(port, timeout=timeout)
    try:
        hs = [("Host", host)] + list(headers or [])
        if body is not None:
            hs.append(("Content-Length", str(len(body))))
        hs.append(("Connection", "close"))
        raw = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs) + "\r\n"
        c.send(raw.encode("latin-1") + (body or b""))
        return c.read_response(head_request=(method == "HEAD"))
    finally:
        c.close()


def echo_headers(doc: dict) -> dict[str, str]:
    """The `headers` object of a `remora echo` reply, keys lower-cased, list values joined."""
    out: dict[str, str] = {}
    h = doc.get("headers", {})
    items = h.items() if isinstance(h, dict) else (tuple(x) for x in h)
    for k, v in items:
        if isinstance(v, list):
            v = ", ".join(str(x) for x in v)
        k = k.lower()
        out[k] = f"{out[k]}, {v}" if k in out else str(v)
    return out


# ---------------------------------------------------------------------------
# curl

def curl(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    """curl -sS ARGS (bytes output); the caller adds -o/-w/--max-time as it needs."""
    return subprocess.run(["curl", "-sS", *map(str, args)], capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------------------
# routing builders (used by the test_routing_* modules)

def gateway_resource(name: str, port: int, hosts: list[str] | None = None,
                     ns: str = "istio-system", selector: dict | None = None) -> dict:
    """A Gateway with one plain-HTTP server on `port`."""
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": selector or {"istio": "ingressgateway"},
            "servers": [{"port": {"number": port, "name": "http", "protocol": "HTTP"},
                         "hosts": hosts or ["*"]}],
        },
    }


def destination_rule(name: str, host: str, subsets: dict[str, dict], ns: str = "default") -> dict:
    """subsets: {subset name: labels}."""
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"host": host,
                 "subsets": [{"name": n, "labels": labels} for n, labels in subsets.items()]},
    }
