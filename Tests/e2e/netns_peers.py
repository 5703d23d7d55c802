"""Small TCP peers for the network-namespace tests (test_netns.py), standard library only.

Each runs as its own process inside a namespace (`ip netns exec NS python3 netns_peers.py
...`), so the test process itself never changes namespace. Servers print `READY PORT`
on stdout once listening, then one JSON line per event; clients print one JSON object
(the result) and exit 0, or exit 1 with {"error": ...}.

  capture   --port P [--port P2 ...]   stands in for the proxy's mesh listeners: on each
            accepted connection it reads SO_ORIGINAL_DST, sends one line
            "CAPTURED listener=P orig=IP:PORT peer=IP:PORT uid=U" and closes.
  tcp-server --port P [--bind ADDR] [--greeting TEXT]   a server-first (with --greeting)
            or client-first TCP server: greeting line on accept (before reading
            anything), then echoes every byte; on the client's EOF (half-close) it sends
            "BYE <bytes received>\\n" and closes. Prints {"event": "accept"|"eof", ...}.
  line-client --host H --port P        connects, reads one line, prints it.
  server-first-client --host H --port P --greeting TEXT [--greeting-timeout S] [--ss]
            reads the greeting WITHOUT sending anything, then sends bytes and reads
            them echoed, half-closes and reads "BYE n" and the EOF. --ss: records
            `ss -tnp` for the connection's destination while it is open (which
            processes own sockets to it: the app and, when captured, the proxy).
  stream-client --host H --port P --bytes N [--http-prefix] [--ss]
            sends N random bytes (after an HTTP/1.1 request head with --http-prefix)
            while reading the echo concurrently, half-closes, reads "BYE n" and the EOF,
            compares sha256 of what was sent and what came back.
  wait-port --host H --port P --timeout S   exits 0 once H:P accepts a connection.

`python3 netns_peers.py selftest` runs the peers against each other on loopback.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def original_dst(sock: socket.socket) -> tuple[str, int] | None:
    try:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError:
        return None
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.inet_ntoa(raw[4:8]), port


def listen(addr: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(128)
    return s


# ---------------------------------------------------------------------------
# servers

def cmd_capture(a) -> int:
    socks = [listen(a.bind, p) for p in a.port]
    for s in socks:
        threading.Thread(target=_capture_loop, args=(s,), daemon=True).start()
    print("READY " + " ".join(str(p) for p in a.port), flush=True)
    threading.Event().wait()
    return 0


def _capture_loop(ls: socket.socket) -> None:
    lport = ls.getsockname()[1]
    while True:
        c, peer = ls.accept()
        try:
            od = original_dst(c)
            ods = f"{od[0]}:{od[1]}" if od else "none"
            line = f"CAPTURED listener={lport} orig={ods} peer={peer[0]}:{peer[1]} uid={os.getuid()}"
            emit({"event": "capture", "listener": lport, "orig": ods, "peer": f"{peer[0]}:{peer[1]}"})
            c.sendall(line.encode() + b"\n")
        except OSError:
            pass
        finally:
            c.close()


def cmd_tcp_server(a) -> int:
    ls = listen(a.bind, a.port)
    print(f"READY {ls.getsockname()[1]}", flush=True)
    greeting = a.greeting.encode() + b"\n" if a.greeting is not None else b""
    while True:
        c, peer = ls.accept()
        threading.Thread(target=_serve, args=(c, peer, greeting), daemon=True).start()


def _serve(c: socket.socket, peer, greeting: bytes) -> None:
    p = f"{peer[0]}:{peer[1]}"
    emit({"event": "accept", "peer": p})
    n = 0
    try:
        if greeting:
            c.sendall(greeting)
        while True:
            data = c.recv(65536)
            if not data:
                break
            n += len(data)
            c.sendall(data)
        c.sendall(f"BYE {n}\n".encode())
        emit({"event": "eof", "peer": p, "bytes": n})
    except OSError as e:
        emit({"event": "error", "peer": p, "bytes": n, "error": str(e)})
    finally:
        c.close()


# ---------------------------------------------------------------------------
# clients

class Fail(Exception):
    pass


def _read_line(s: socket.socket, buf: bytearray, deadline: float) -> bytes:
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail(f"timed out waiting for a line; got {bytes(buf[:200])!r}")
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            raise Fail(f"timed out waiting for a line; got {bytes(buf[:200])!r}") from None
        if not chunk:
            raise Fail(f"EOF before a line; got {bytes(buf[:200])!r}")
        buf += chunk
    i = buf.index(b"\n") + 1
    line = bytes(buf[:i])
    del buf[:i]
    return line


def _read_exact(s: socket.socket, buf: bytearray, n: int, deadline: float) -> bytes:
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail(f"timed out after {len(buf)} of {n} bytes")
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            raise Fail(f"timed out after {len(buf)} of {n} bytes") from None
        if not chunk:
            raise Fail(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _read_eof(s: socket.socket, buf: bytearray, deadline: float) -> None:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail("no EOF from the server")
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            raise Fail("no EOF from the server") from None
        except ConnectionResetError:
            raise Fail("connection reset instead of an EOF") from None
        if not chunk:
            if buf:
                raise Fail(f"unexpected bytes before EOF: {bytes(buf[:200])!r}")
            return
        buf += chunk


def _ss(host: str, port: int) -> list[str]:
    """Established sockets to host:port in this namespace, with their processes."""
    try:
        r = subprocess.run(["ss", "-Htnp", "state", "established", "dst", f"{host}:{port}"],
                           capture_output=True, text=True, timeout=10)
        return [ln for ln in r.stdout.splitlines() if ln.strip()]
    except (OSError, subprocess.SubprocessError) as e:
        return [f"ss failed: {e}"]


def _run_client(fn, a) -> int:
    try:
        res = fn(a)
    except (Fail, OSError) as e:
        emit({"error": f"{type(e).__name__}: {e}"})
        return 1
    emit(res)
    return 0


def cmd_line_client(a) -> int:
    def run(a):
        s = socket.create_connection((a.host, a.port), timeout=a.timeout)
        try:
            buf = bytearray()
            line = _read_line(s, buf, time.monotonic() + a.timeout)
            return {"line": line.decode("utf-8", "replace").rstrip("\n"),
                    "local": "%s:%d" % s.getsockname()}
        finally:
            s.close()
    return _run_client(run, a)


def cmd_server_first_client(a) -> int:
    def run(a):
        t0 = time.monotonic()
        s = socket.create_connection((a.host, a.port), timeout=5)
        res = {"local": "%s:%d" % s.getsockname(), "connect_seconds": time.monotonic() - t0}
        try:
            buf = bytearray()
            t1 = time.monotonic()
            # nothing is sent before the greeting arrives: a server-first protocol
            greeting = _read_line(s, buf, t1 + a.greeting_timeout)
            res["greeting"] = greeting.decode("utf-8", "replace").rstrip("\n")
            res["greeting_seconds"] = time.monotonic() - t1
            if a.ss:
                res["ss"] = _ss(a.host, a.port)
            deadline = time.monotonic() + 10
            payload = b"client-bytes-after-greeting:" + os.urandom(16).hex().encode() + b"\n"
            s.sendall(payload)
            echoed = _read_exact(s, buf, len(payload), deadline)
            res["echo_ok"] = echoed == payload
            s.shutdown(socket.SHUT_WR)  # half-close: the server must still be able to answer
            bye = _read_line(s, buf, deadline)
            res["bye"] = bye.decode("utf-8", "replace").rstrip("\n")
            res["expected_bye"] = f"BYE {len(payload)}"
            _read_eof(s, buf, deadline)
            res["eof"] = True
            return res
        except Fail as e:
            res["error"] = str(e)
            raise Fail(json.dumps(res)) from None
        finally:
            s.close()
    return _run_client(run, a)


def cmd_stream_client(a) -> int:
    def run(a):
        s = socket.create_connection((a.host, a.port), timeout=5)
        res = {"local": "%s:%d" % s.getsockname()}
        try:
            prefix = b""
            if a.http_prefix:
                # looks like HTTP: a port declared TCP must still pass it through untouched
                prefix = (f"GET /not-http-really HTTP/1.1\r\nHost: {a.host}:{a.port}\r\n"
                          "Content-Length: 5\r\n\r\n").encode()
            payload = prefix + os.urandom(a.bytes)
            res["sent_bytes"] = len(payload)
            res["sent_sha256"] = hashlib.sha256(payload).hexdigest()
            err: list[BaseException] = []
            ss_lines: list[str] = []

            def writer():
                try:
                    view = memoryview(payload)
                    for i in range(0, len(view), 65536):
                        s.sendall(view[i:i + 65536])
                        if i == 0 and a.ss:
                            time.sleep(0.2)
                            ss_lines.extend(_ss(a.host, a.port))
                    s.shutdown(socket.SHUT_WR)
                except BaseException as e:  # noqa: BLE001
                    err.append(e)

            t = threading.Thread(target=writer, daemon=True)
            t.start()
            buf = bytearray()
            deadline = time.monotonic() + 60
            got = _read_exact(s, buf, len(payload), deadline)
            t.join(30)
            if err:
                raise Fail(f"writing failed: {err[0]!r}")
            res["recv_bytes"] = len(got)
            res["recv_sha256"] = hashlib.sha256(got).hexdigest()
            if got != payload:
                first = next((i for i in range(len(got)) if got[i] != payload[i]), None)
                res["first_difference_at"] = first
            bye = _read_line(s, buf, deadline)
            res["bye"] = bye.decode("utf-8", "replace").rstrip("\n")
            res["expected_bye"] = f"BYE {len(payload)}"
            _read_eof(s, buf, deadline)
            res["eof"] = True
            if a.ss:
                res["ss"] = ss_lines
            return res
        except Fail as e:
            res["error"] = str(e)
            raise Fail(json.dumps(res)) from None
        finally:
            s.close()
    return _run_client(run, a)


def cmd_idle_client(a) -> int:
    """Keeps a connection busy (a line echoed every 0.2 s) for --active seconds, then goes
    quiet and reports how long the connection stayed open (until EOF from the other side)."""
    def run(a):
        s = socket.create_connection((a.host, a.port), timeout=5)
        try:
            buf = bytearray()
            t_end = time.monotonic() + a.active
            echoed = 0
            while time.monotonic() < t_end:
                s.sendall(b"ping\n")
                if _read_line(s, buf, time.monotonic() + 5) != b"ping\n":
                    raise Fail("echo mismatch")
                echoed += 1
                time.sleep(0.2)
            quiet = time.monotonic()
            s.settimeout(a.wait)
            try:
                closed = s.recv(65536) == b""
            except socket.timeout:
                closed = False
            except ConnectionResetError:
                closed = True
            return {"echoed": echoed, "closed": closed, "quiet_seconds": round(time.monotonic() - quiet, 2)}
        finally:
            s.close()
    return _run_client(run, a)


def cmd_wait_port(a) -> int:
    deadline = time.monotonic() + a.timeout
    while True:
        try:
            socket.create_connection((a.host, a.port), timeout=0.5).close()
            return 0
        except OSError:
            if time.monotonic() >= deadline:
                return 1
            time.sleep(0.05)


# ---------------------------------------------------------------------------
# selftest (loopback only, no namespace needed)

def selftest() -> int:
    me = [sys.executable, os.path.abspath(__file__)]

    def start(args):
        p = subprocess.Popen(me + args, stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        assert line.startswith("READY "), line
        return p, int(line.split()[1])

    def client(args):
        r = subprocess.run(me + args, capture_output=True, text=True, timeout=60)
        return r.returncode, json.loads(r.stdout.strip().splitlines()[-1])

    procs = []
    try:
        sf, port = start(["tcp-server", "--bind", "127.0.0.1", "--port", "0", "--greeting", "HELLO 1"])
        procs.append(sf)
        rc, res = client(["server-first-client", "--host", "127.0.0.1", "--port", str(port),
                          "--greeting-timeout", "1", "--ss"])
        assert rc == 0 and res["greeting"] == "HELLO 1" and res["echo_ok"], res
        assert res["bye"] == res["expected_bye"] and res["eof"], res
        plain, port2 = start(["tcp-server", "--bind", "127.0.0.1", "--port", "0"])
        procs.append(plain)
        rc, res = client(["stream-client", "--host", "127.0.0.1", "--port", str(port2),
                          "--bytes", "1048576", "--http-prefix"])
        assert rc == 0 and res["sent_sha256"] == res["recv_sha256"], res
        assert res["bye"] == res["expected_bye"], res
        rc, res = client(["line-client", "--host", "127.0.0.1", "--port", str(port)])
        assert rc == 0 and res["line"] == "HELLO 1", res
        cap, _ = start(["capture", "--bind", "127.0.0.1", "--port", "0"])
        procs.append(cap)
        print("selftest ok")
        return 0
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("capture")
    p.add_argument("--port", type=int, action="append", required=True)
    p.add_argument("--bind", default="0.0.0.0")
    p = sub.add_parser("tcp-server")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--greeting")
    p = sub.add_parser("line-client")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=5)
    p = sub.add_parser("server-first-client")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--greeting-timeout", type=float, default=1.0)
    p.add_argument("--ss", action="store_true")
    p = sub.add_parser("stream-client")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.add_argument("--http-prefix", action="store_true")
    p.add_argument("--ss", action="store_true")
    p = sub.add_parser("idle-client")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--active", type=float, default=2.0)
    p.add_argument("--wait", type=float, default=5.0)
    p = sub.add_parser("wait-port")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=1)
    sub.add_parser("selftest")
    a = ap.parse_args(argv)
    return {
        "capture": cmd_capture, "tcp-server": cmd_tcp_server, "line-client": cmd_line_client,
        "server-first-client": cmd_server_first_client, "stream-client": cmd_stream_client,
        "wait-port": cmd_wait_port, "idle-client": cmd_idle_client, "selftest": lambda _a: selftest(),
    }[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
