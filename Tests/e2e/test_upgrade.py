"""A WebSocket-style Upgrade through the proxy: the 101 reaches the client and then the
connection is a byte-for-byte tunnel both ways (SPEC §6)."""
import os
import socket
import threading

GREETING = b"server-speaks-first\r\n\r\nHTTP/1.1 200 OK\r\n\r\n\x00\xff"


def test_websocket_upgrade_tunnelled(env):
    up = env.upgrade_backend(greeting=GREETING)
    px = env.proxy({"backend.local": up.port})

    s = socket.create_connection(("127.0.0.1", px.port), timeout=10)
    try:
        s.sendall(b"GET /chat HTTP/1.1\r\nHost: backend.local\r\nConnection: Upgrade\r\n"
                  b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, f"closed before the 101: {buf!r}"
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n")[0]
        assert status_line.startswith(b"HTTP/1.1 101"), head
        lower = head.lower()
        assert b"upgrade: websocket" in lower, head

        # the backend saw the upgrade request with its Upgrade/Connection headers
        assert up.requests, "backend never saw the request"
        req = up.requests[0]
        assert (req.header("upgrade") or "").lower() == "websocket", req.headers
        assert "upgrade" in (req.header("connection") or "").lower(), req.headers

        # server -> client bytes sent in the same write as the 101
        while len(rest) < len(GREETING):
            chunk = s.recv(65536)
            assert chunk, f"tunnel closed after {rest!r}"
            rest += chunk
        assert rest[:len(GREETING)] == GREETING, rest
        extra = rest[len(GREETING):]

        # client -> server -> client: 512 KiB of random bytes, echoed byte-for-byte
        payload = os.urandom(512 * 1024) + b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"
        sender = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
        sender.start()
        got = bytearray(extra)
        while len(got) < len(payload):
            chunk = s.recv(65536)
            assert chunk, f"tunnel closed after {len(got)} of {len(payload)} echoed bytes"
            got += chunk
        sender.join(10)
        assert bytes(got) == payload, "echoed bytes differ from what was sent"

        # closing the client side ends the tunnel: the backend sees EOF, the client EOF
        s.shutdown(socket.SHUT_WR)
        assert up.eof_seen.wait(5), "backend never saw the client's close through the tunnel"
        s.settimeout(5)
        try:
            tail = s.recv(65536)
        except ConnectionResetError:
            tail = b""
        assert tail == b"", f"expected the tunnel to close, got {tail!r}"
    finally:
        s.close()
    # the proxy still serves ordinary requests
    assert px.proc.alive()
