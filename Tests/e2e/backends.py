"""Python upstreams for tests that need more control than `remora echo` gives.

In-process (threaded) servers, each listening on 127.0.0.1 at a port the kernel picks:
  RecordingBackend  HTTP/1.1 keep-alive server that records every complete request it
                    receives (method, target, raw header list, body length and sha256)
                    and answers 200 with a JSON summary of the request.
  UpgradeBackend    answers an `Upgrade:` request with 101, sends a greeting in the same
                    write, then echoes every byte until EOF (records the request and EOF).

As a separate process (so a test can SIGKILL it):
  python3 backends.py stall --mode headers|none
      prints "READY <port>", accepts, reads one request and either sends a response head
      announcing 1,000,000 bytes plus 65,536 of them and prints "SENT", or sends nothing
      and prints "GOT"; then hangs until killed.

`python3 backends.py selftest` checks all of them without Remora.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
import time


class BadRequest(Exception):
    pass


class Reader:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            return False
        self.buf += chunk
        return True

    def until(self, marker: bytes, limit: int = 1 << 20) -> bytes | None:
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise BadRequest("line too long")
            if not self.fill():
                return None
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exact(self, n: int, sink) -> bool:
        while n > 0:
            if not self.buf and not self.fill():
                return False
            take = self.buf[:n]
            self.buf = self.buf[len(take):]
            sink(take)
            n -= len(take)
        return True


class Request:
    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers: list[tuple[str, str]] = headers
        self.body_bytes = 0
        self.body_prefix = b""
        self._sha = hashlib.sha256()
        self.sha256 = ""
        self.framing = "none"

    def header(self, name: str) -> str | None:
        vals = self.header_all(name)
        return ", ".join(vals) if vals else None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def _sink(self, data: bytes) -> None:
        self._sha.update(data)
        self.body_bytes += len(data)
        if len(self.body_prefix) < 65536:
            self.body_prefix += data[: 65536 - len(self.body_prefix)]

    def summary(self) -> dict:
        return {"method": self.method, "target": self.target, "version": self.version,
                "headers": self.headers, "bodyBytes": self.body_bytes, "sha256": self.sha256,
                "framing": self.framing}


def read_request_head(r: Reader) -> Request | None:
    head = r.until(b"\r\n\r\n")
    if head is None:
        return None
    lines = head[:-4].split(b"\r\n")
    try:
        method, target, version = lines[0].decode("latin-1").split(" ")
    except ValueError:
        raise BadRequest(f"bad request line {lines[0]!r}")
    headers = []
    for ln in lines[1:]:
        k, sep, v = ln.decode("latin-1").partition(":")
        if not sep:
            raise BadRequest(f"bad header line {ln!r}")
        headers.append((k, v.strip()))
    return Request(method, target, version, headers)


def read_request_body(r: Reader, req: Request) -> bool:
    """Reads the body into req (hash + length). False on EOF or framing error."""
    te = (req.header("transfer-encoding") or "").lower()
    cl = req.header_all("content-length")
    if te:
        if te.strip() != "chunked":
            raise BadRequest(f"unsupported transfer-encoding {te!r}")
        req.framing = "chunked"
        while True:
            line = r.until(b"\r\n")
            if line is None:
                return False
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BadRequest(f"bad chunk size {line!r}")
            if size == 0:
                while True:
                    t = r.until(b"\r\n")
                    if t is None:
                        return False
                    if t == b"\r\n":
                        break
                break
            if not r.exact(size, req._sink):
                return False
            crlf = r.until(b"\r\n")
            if crlf != b"\r\n":
                raise BadRequest("missing CRLF after chunk")
    elif cl:
        if len(set(cl)) != 1:
            raise BadRequest("conflicting content-length")
        req.framing = "content-length"
        if not r.exact(int(cl[0]), req._sink):
            return False
    req.sha256 = req._sha.hexdigest()
    return True


class _Server:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self._stop = False
        self._conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.connections_accepted = 0
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self._stop:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self._conns.append(s)
                self.connections_accepted += 1
            threading.Thread(target=self._serve_wrapper, args=(s,), daemon=True).start()

    def _serve_wrapper(self, s):
        try:
            self.serve(s)
        except (BadRequest, OSError):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def serve(self, s: socket.socket):
        raise NotImplementedError

    def stop(self):
        self._stop = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self.lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass


class RecordingBackend(_Server):
    """Records every complete request; replies 200 + JSON summary, keep-alive."""

    def __init__(self, name: str = "recorder", **kw):
        self.name = name
        self.requests: list[Request] = []
        self.heads_seen = 0  # request heads read, complete or not
        self._cv = threading.Condition()
        super().__init__(**kw)

    def serve(self, s):
        r = Reader(s)
        while True:
            req = read_request_head(r)
            if req is None:
                return
            with self._cv:
                self.heads_seen += 1
            if not read_request_body(r, req):
                return
            with self._cv:
                self.requests.append(req)
                self._cv.notify_all()
            body = json.dumps(req.summary()).encode()
            close = "close" in (req.header("connection") or "").lower()
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      + f"x-backend-name: {self.name}\r\nContent-Length: {len(body)}\r\n".encode()
                      + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body)
            if close:
                return

    def reset(self):
        with self._cv:
            self.requests.clear()
            self.heads_seen = 0

    def wait_for(self, n: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
            return True


class UpgradeBackend(_Server):
    """101 + greeting in one write, then a byte echo until EOF."""

    def __init__(self, greeting: bytes = b"", **kw):
        self.greeting = greeting
        self.requests: list[Request] = []
        self.eof_seen = threading.Event()
        self.bytes_echoed = 0
        super().__init__(**kw)

    def serve(self, s):
        r = Reader(s)
        req = read_request_head(r)
        if req is None:
            return
        self.requests.append(req)
        if not (req.header("upgrade") and "upgrade" in (req.header("connection") or "").lower()):
            body = b"expected an upgrade request"
            s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                      % len(body) + body)
            return
        s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n" + self.greeting)
        if r.buf:
            data, r.buf = r.buf, b""
            s.sendall(data)
            self.bytes_echoed += len(data)
        while True:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.eof_seen.set()
                return
            s.sendall(data)
            self.bytes_echoed += len(data)


# ---------------------------------------------------------------------------
# separate-process backend, to be SIGKILLed mid-exchange

def stall_main(mode: str, port: int = 0) -> None:
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    print(f"READY {ls.getsockname()[1]}", flush=True)
    keep = []
    while True:
        s, _ = ls.accept()
        keep.append(s)
        r = Reader(s)
        try:
            req = read_request_head(r)
            if req is None:
                continue
            read_request_body(r, req)
        except BadRequest:
            continue
        if mode == "headers":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                      b"Content-Length: 1000000\r\n\r\n" + b"x" * 65536)
            print("SENT", flush=True)
        else:
            print("GOT", flush=True)
        # hang with the connection open until SIGKILL


# ---------------------------------------------------------------------------
# self test (no Remora needed)

def _selftest() -> None:
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import harness

    rec = RecordingBackend(name="r1")
    r = harness.http_request(rec.port, "POST", "/p?q=1", headers=[("X-A", "1")], body=b"hello")
    assert r.status == 200, r
    d = r.json()
    assert d["bodyBytes"] == 5 and d["sha256"] == hashlib.sha256(b"hello").hexdigest(), d
    assert ["X-A", "1"] in d["headers"], d
    # chunked, keep-alive, pipelined
    c = harness.RawConn(rec.port)
    c.send(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    a, b = c.read_response(), c.read_response()
    assert a.json()["bodyBytes"] == 11 and a.json()["framing"] == "chunked", a
    assert b.json()["target"] == "/2", b
    c.close()
    assert rec.wait_for(3) and len(rec.requests) == 3
    rec.stop()

    up = UpgradeBackend(greeting=b"hi!")
    c = harness.RawConn(up.port)
    c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly")
    r = c.read_response()
    assert r.status == 101, r
    got = c.read_exact(8)
    assert got == b"hi!early", got
    c.send(b"\x00\xff\r\n\r\n")
    assert c.read_exact(6) == b"\x00\xff\r\n\r\n"
    c.sock.shutdown(socket.SHUT_WR)
    assert up.eof_seen.wait(3)
    assert c.closed_within(3)
    c.close()
    up.stop()

    for mode, word in (("headers", "SENT"), ("none", "GOT")):
        p = subprocess.Popen([sys.executable, __file__, "stall", "--mode", mode],
                             stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline().split()
        assert line[0] == "READY", line
        port = int(line[1])
        c = harness.RawConn(port)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert p.stdout.readline().strip() == word
        if mode == "headers":
            head = c.read_until(b"\r\n\r\n")
            assert b"1000000" in head
        p.kill()
        p.wait()
        c.close()
    print("backends selftest: ok")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "stall":
        mode = "headers"
        port = 0
        args = sys.argv[2:]
        for i, a in enumerate(args):
            if a == "--mode":
                mode = args[i + 1]
            if a == "--port":
                port = int(args[i + 1])
        stall_main(mode, port)
    elif len(sys.argv) >= 2 and sys.argv[1] == "selftest":
        _selftest()
    else:
        print(__doc__)
        sys.exit(2)
