"""HTTP/2 protection at the downstream listener, with raw h2 clients (h2_peers.py):
the rapid-reset attack (CVE-2023-44487), empty DATA frame floods, PING/SETTINGS floods
from a client that never reads, header lists over `limits.maxRequestHeadersKb` /
`maxHeaders`, `limits.maxConcurrentStreams`, malformed requests (RST_STREAM
PROTOCOL_ERROR, the connection goes on), back-pressure for a slow h2 reader, and GOAWAY
on drain (SIGTERM) with the in-flight stream completing.

Each test prints the figures it measured (pytest -s shows them; failures include them).
"""
from __future__ import annotations

import signal
import socket
import time

import pytest

from h2_peers import (CANCEL, ENHANCE_YOUR_CALM, FRAME_GOAWAY, PREFACE, PROTOCOL_ERROR,
                      REFUSED_STREAM, H2Backend, H2Client, err_name, frame_empty_data,
                      frame_ping, frame_settings, goaway_fields, scan_frames, start_proxy)
from harness import cpu_seconds, rss_kb

H1 = "HTTP"
H2 = "HTTP2"
MIB_KB = 1024   # 1 MiB in kB (rss_kb units)


def fresh_get_ok(px, authority: str, path: str = "/after") -> None:
    """A new h2 connection still gets 200 (the proxy survived and serves)."""
    assert px.proc.alive(), f"proxy exited (rc={px.proc.returncode})"
    with H2Client(px.port, authority=authority) as c:
        s = c.get(path)
        assert s.status == 200, f"fresh connection after the attack: {s} {c.describe()}"


def wait_quiet(count, settle: float = 0.3, timeout: float = 3.0) -> int:
    """Wait until count() stops changing for `settle` seconds; returns the value."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            break
    return last


def _ended_by_proxy(c: H2Client) -> tuple[bool, str]:
    """(ok, description): GOAWAY ENHANCE_YOUR_CALM, or closed without a GOAWAY."""
    if c.goaways:
        codes = [code for code, _, _ in c.goaways]
        return ENHANCE_YOUR_CALM in codes, f"GOAWAY {[err_name(x) for x in codes]}"
    if c.closed:
        return True, "connection closed by the proxy without GOAWAY"
    return False, "neither GOAWAY nor close"


# ---------------------------------------------------------------------------
# rapid reset (CVE-2023-44487)

STREAMS = 10_000
BATCH = 100


@pytest.mark.parametrize("upstream", [H1, H2], ids=["h1-upstream", "h2-upstream"])
def test_rapid_reset(env, upstream):
    if upstream == H1:
        backend = env.recording_backend("rr")
        count = lambda: backend.heads_seen  # noqa: E731  request heads, complete or not
    else:
        backend = H2Backend(name="rr")
        env.servers.append(backend)
        count = lambda: backend.requests_started  # noqa: E731
    px = start_proxy(env, {"rr.local": (backend.port, upstream)})
    fresh_get_ok(px, "rr.local", "/warm")        # warm path, upstream connection in the pool
    wait_quiet(count)
    base_count = count()
    cpu0, rss0 = cpu_seconds(px.proc.pid), rss_kb(px.proc.pid)

    c = H2Client(px.port, authority="rr.local")
    hdrs = c.request_headers("/rapid-reset")
    opened = 0
    t0 = time.monotonic()
    try:
        while opened < STREAMS and not c.goaways and not c.closed:
            # a batch of HEADERS + RST_STREAM(CANCEL) pairs in one sendall, then a PING:
            # its ACK means the proxy has processed the whole batch
            for _ in range(BATCH):
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, hdrs, end_stream=True)
                c.conn.reset_stream(sid, CANCEL)
                opened += 1
            acks = len(c.ping_acks)
            c.conn.ping(opened.to_bytes(8, "big"))
            c.flush()
            c.wait(lambda: len(c.ping_acks) > acks or c.goaways or c.closed, timeout=10)
            assert len(c.ping_acks) > acks or c.goaways or c.closed, \
                f"the proxy stopped answering after {opened} streams: {c.describe()}"
        took = time.monotonic() - t0
        c.wait_closed(5)
    finally:
        c.close()
    upstream_requests = wait_quiet(count) - base_count
    cpu1, rss1 = cpu_seconds(px.proc.pid), rss_kb(px.proc.pid)
    ok, how = _ended_by_proxy(c)
    figures = (f"rapid reset ({upstream} upstream): {opened} streams opened+reset in {took:.2f}s, "
               f"ended by: {how}, connection closed: {c.closed}; upstream requests: "
               f"{upstream_requests}; proxy CPU {cpu1 - cpu0:.2f}s, RSS {rss0} -> {rss1} kB "
               f"(+{rss1 - rss0} kB)")
    print(figures)
    assert c.goaways or c.closed, f"no GOAWAY and no close after {opened} reset streams. {figures}"
    assert ok, f"GOAWAY must carry ENHANCE_YOUR_CALM. {figures}"
    assert opened < STREAMS, f"the proxy let all {STREAMS} streams through. {figures}"
    assert upstream_requests < 0.05 * opened, \
        f"reset streams caused upstream work. {figures}"
    assert cpu1 - cpu0 < 5.0, f"CPU not bounded. {figures}"
    assert rss1 - rss0 < 16 * MIB_KB, f"RSS not bounded. {figures}"
    fresh_get_ok(px, "rr.local")


def test_rapid_reset_reconnecting_attacker(env):
    """The attacker reconnects after each GOAWAY until 10 000 streams were opened and
    reset in all: every connection is cut early, the backend sees (almost) nothing, and
    the proxy's CPU and RSS stay bounded over the whole attack."""
    rec = env.recording_backend("rr")
    px = start_proxy(env, {"rr.local": (rec.port, H1)})
    fresh_get_ok(px, "rr.local", "/warm")
    wait_quiet(lambda: rec.heads_seen)
    base = rec.heads_seen
    cpu0, rss0 = cpu_seconds(px.proc.pid), rss_kb(px.proc.pid)
    total, conns, per_conn, endings = 0, 0, [], {}
    t0 = time.monotonic()
    while total < STREAMS and time.monotonic() - t0 < 30:
        c = H2Client(px.port, authority="rr.local")
        conns += 1
        hdrs = c.request_headers("/rapid-reset")
        opened = 0
        try:
            while opened < STREAMS and total < STREAMS and not c.goaways and not c.closed:
                for _ in range(BATCH):
                    sid = c.conn.get_next_available_stream_id()
                    c.conn.send_headers(sid, hdrs, end_stream=True)
                    c.conn.reset_stream(sid, CANCEL)
                    opened += 1
                    total += 1
                acks = len(c.ping_acks)
                c.conn.ping(total.to_bytes(8, "big"))
                c.flush()
                c.wait(lambda: len(c.ping_acks) > acks or c.goaways or c.closed, timeout=10)
                assert len(c.ping_acks) > acks or c.goaways or c.closed, c.describe()
            c.wait_closed(5)
        finally:
            c.close()
        ok, how = _ended_by_proxy(c)
        endings[how] = endings.get(how, 0) + 1
        per_conn.append(opened)
        if not ok:
            break
    took = time.monotonic() - t0
    upstream = wait_quiet(lambda: rec.heads_seen) - base
    cpu1, rss1 = cpu_seconds(px.proc.pid), rss_kb(px.proc.pid)
    figures = (f"reconnecting rapid reset: {total} streams on {conns} connections in {took:.1f}s "
               f"(per connection: max {max(per_conn)}, last {per_conn[-1]}), endings {endings}; "
               f"upstream requests {upstream}; proxy CPU {cpu1 - cpu0:.2f}s, RSS {rss0} -> {rss1} kB "
               f"(+{rss1 - rss0} kB)")
    print(figures)
    assert all(k.startswith("GOAWAY ['ENHANCE_YOUR_CALM") or k.startswith("connection closed")
               for k in endings), f"a connection was not cut with ENHANCE_YOUR_CALM/close. {figures}"
    assert total >= STREAMS, f"the attack did not get through {STREAMS} streams in 30 s. {figures}"
    assert max(per_conn) < STREAMS, figures
    assert upstream < 0.05 * total, f"reset streams caused upstream work. {figures}"
    assert cpu1 - cpu0 < 5.0, f"CPU not bounded. {figures}"
    assert rss1 - rss0 < 16 * MIB_KB, f"RSS not bounded. {figures}"
    fresh_get_ok(px, "rr.local")


@pytest.mark.parametrize("upstream", [H1, H2], ids=["h1-upstream", "h2-upstream"])
def test_rapid_reset_after_dispatch(env, upstream):
    """The classic shape: each stream's HEADERS is processed (and sent upstream) before
    its RST_STREAM arrives, while the response is still pending (/delay/5000): the resets
    are premature, so the connection gets GOAWAY ENHANCE_YOUR_CALM (or is closed) long
    before 10 000 streams, and cancelled upstream work does not pile up."""
    e = env.echo(name="rd")
    px = start_proxy(env, {"rd.local": (e.port, upstream)})
    fresh_get_ok(px, "rd.local", "/warm")
    cpu0, rss0 = cpu_seconds(px.proc.pid), rss_kb(px.proc.pid)
    c = H2Client(px.port, authority="rd.local")
    hdrs = c.request_headers("/delay/5000")
    opened = 0
    t0 = time.monotonic()

    def sync(tag: int) -> bool:
        acks = len(c.ping_acks)
        c.conn.ping(tag.to_bytes(8, "big"))
        c.flush()
        c.wait(lambda: len(c.ping_acks) > acks or c.goaways or c.closed, timeout=10)
        return len(c.ping_acks) > acks

    try:
        while opened < STREAMS and not c.goaways and not c.closed and time.monotonic() - t0 < 20:
            sids = []
            for _ in range(20):
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, hdrs, end_stream=True)
                sids.append(sid)
            opened += len(sids)
            if not sync(2 * opened):           # the HEADERS were processed...
                break
            for sid in sids:                   # ...then the resets come
                if not c.streams.get(sid) or not c.streams[sid].done:
                    c.conn.reset_stream(sid, CANCEL)
            if not sync(2 * opened + 1):
                break
        took = time.monotonic() - t0
        c.wait_closed(5)
    finally:
        c.close()
    cpu1, rss1 = cpu_seconds(px.proc.pid), rss_kb(px.proc.pid)
    ok, how = _ended_by_proxy(c)
    figures = (f"rapid reset after dispatch ({upstream} upstream): {opened} streams in {took:.2f}s, "
               f"ended by: {how}, closed: {c.closed}; proxy CPU {cpu1 - cpu0:.2f}s, RSS {rss0} -> "
               f"{rss1} kB (+{rss1 - rss0} kB)")
    print(figures)
    assert c.goaways or c.closed, f"no GOAWAY and no close. {figures}"
    assert ok, f"GOAWAY must carry ENHANCE_YOUR_CALM. {figures}"
    assert opened < 1000, f"the proxy took {opened} premature resets before cutting. {figures}"
    assert cpu1 - cpu0 < 5.0, f"CPU not bounded. {figures}"
    assert rss1 - rss0 < 16 * MIB_KB, f"RSS not bounded. {figures}"
    fresh_get_ok(px, "rd.local")


# ---------------------------------------------------------------------------
# empty DATA frames

def test_empty_data_frame_flood(env):
    e = env.echo(name="ed")
    px = start_proxy(env, {"ed.local": (e.port, H1)})
    c = H2Client(px.port, authority="ed.local")
    sent = 0
    try:
        sid = c.request("/empty-data", "POST", end_stream=False)
        batch = frame_empty_data(sid) * 10_000   # 90 kB of consecutive empty DATA frames
        while sent < 100_000 and not c.goaways and not c.closed:
            c.flush()
            if not c.send_raw(batch):
                break
            sent += 10_000
            acks = len(c.ping_acks)
            c.ping(sent.to_bytes(8, "big"))
            c.wait(lambda: len(c.ping_acks) > acks or c.goaways or c.closed, timeout=10)
            assert len(c.ping_acks) > acks or c.goaways or c.closed, \
                f"the proxy stopped answering after {sent} empty DATA frames: {c.describe()}"
        c.wait_closed(5)
    finally:
        c.close()
    ok, how = _ended_by_proxy(c)
    print(f"empty DATA flood: {sent} frames sent, ended by: {how}, closed: {c.closed}")
    assert c.goaways or c.closed, f"{sent} empty DATA frames and no GOAWAY/close: {c.describe()}"
    assert ok, f"GOAWAY must carry ENHANCE_YOUR_CALM: {how}"
    fresh_get_ok(px, "ed.local")


# ---------------------------------------------------------------------------
# PING / SETTINGS flood from a client that never reads

def test_ping_settings_flood_without_reading(env):
    e = env.echo(name="pf")
    px = start_proxy(env, {"pf.local": (e.port, H1)})
    fresh_get_ok(px, "pf.local", "/warm")
    rss0 = rss_kb(px.proc.pid)
    rss_max = rss0

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the proxy's ACKs pile up soon
    s.connect(("127.0.0.1", px.port))
    s.settimeout(3)
    batch = (frame_ping(b"floodpng") + frame_settings({})) * 500
    frames, outcome = 0, "sent everything"
    t0 = time.monotonic()
    try:
        s.sendall(PREFACE + frame_settings({}))
        while frames < 1_000_000 and time.monotonic() - t0 < 10:
            try:
                s.sendall(batch)
            except socket.timeout:
                outcome = "send blocked (the proxy stopped reading)"
                break
            except (BrokenPipeError, ConnectionResetError):
                outcome = "connection closed by the proxy while sending"
                break
            frames += 1000
            if frames % 20_000 == 0:
                rss_max = max(rss_max, rss_kb(px.proc.pid))
        rss_max = max(rss_max, rss_kb(px.proc.pid))
        send_took = time.monotonic() - t0
        # now read what the proxy sent: it must end with a close (GOAWAY before it, maybe)
        goaways, closed, got = [], False, 0
        buf = b""
        deadline = time.monotonic() + 10
        s.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(1 << 20)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            got += len(chunk)
            parsed, buf = scan_frames(buf + chunk)
            goaways += [goaway_fields(p) for t, _, _, p in parsed if t == FRAME_GOAWAY]
        rss_max = max(rss_max, rss_kb(px.proc.pid))
    finally:
        s.close()
    rss1 = rss_kb(px.proc.pid)
    figures = (f"PING/SETTINGS flood: {frames} frames in {send_took:.2f}s, {outcome}; then read "
               f"{got} bytes, closed: {closed}, GOAWAYs: "
               f"{[(err_name(code), last) for last, code in goaways]}; RSS {rss0} kB, max "
               f"{rss_max} kB, after {rss1} kB")
    print(figures)
    assert closed, f"the proxy did not close a flooding connection. {figures}"
    if goaways:
        assert any(code == ENHANCE_YOUR_CALM for _, code in goaways), figures
    assert rss_max - rss0 < 16 * MIB_KB, f"RSS not bounded. {figures}"
    fresh_get_ok(px, "pf.local")


# ---------------------------------------------------------------------------
# header limits

@pytest.mark.parametrize("kind", ["size", "count"])
def test_oversized_header_list(env, kind):
    rec = env.recording_backend("hl")
    px = start_proxy(env, {"hl.local": (rec.port, H1)})
    if kind == "size":   # 80 kB of header list > maxRequestHeadersKb 60 (each field < 64 kB)
        big = [(f"x-big-{i:02d}", chr(ord("a") + i) * 4000) for i in range(20)]
    else:                # 150 headers > maxHeaders 100
        big = [(f"x-many-{i:03d}", "v") for i in range(150)]
    with H2Client(px.port, authority="hl.local") as c:
        s = c.wait_stream(c.request("/too-big", headers=big))
        assert s.done, f"no answer to an oversized header list: {s} {c.describe()}"
        assert s.status == 431 or s.reset_code is not None, \
            f"want 431 or RST_STREAM for an oversized header list: {s}"
        print(f"oversized header list ({kind}): status={s.status} "
              f"reset={err_name(s.reset_code) if s.reset_code is not None else None}"
              + ("" if s.status == 431 else "  (431 preferred)"))
        assert not c.goaways and not c.closed, f"the connection must survive: {c.describe()}"
        s2 = c.get("/next")
        assert s2.status == 200, f"next stream on the same connection: {s2} {c.describe()}"
    assert rec.wait_for(1)
    time.sleep(0.2)
    targets = [r.target for r in rec.requests]
    assert targets == ["/next"], f"the oversized request reached the backend: {targets}"


# ---------------------------------------------------------------------------
# maxConcurrentStreams

def test_max_concurrent_streams(env):
    e = env.echo(name="mc")
    px = start_proxy(env, {"mc.local": (e.port, H1)}, limits={"maxConcurrentStreams": 5})
    # preface, SETTINGS and six HEADERS in one write, before the proxy's SETTINGS are read
    # (and so before they are ACKed): the sixth must be refused, not queued
    with H2Client(px.port, authority="mc.local", flush=False) as c:
        sids = [c.request("/delay/1500", flush=False) for _ in range(6)]
        c.flush()
        c.wait(lambda: all(c.streams[x].done for x in sids), timeout=15)
        streams = [c.streams[x] for x in sids]
        print(f"max concurrent streams: remote settings {c.remote_settings}; "
              + "; ".join(f"stream {s.id}: status={s.status} reset={err_name(s.reset_code)}"
                          for s in streams))
        assert c.remote_settings.get(0x3) == 5, \
            f"SETTINGS_MAX_CONCURRENT_STREAMS should be 5: {c.remote_settings}"
        *first, sixth = streams
        assert all(s.status == 200 and s.ended for s in first), first
        assert sixth.reset_code in (REFUSED_STREAM, PROTOCOL_ERROR), \
            f"the 6th concurrent stream must be refused (REFUSED_STREAM): {sixth}"
        assert sixth.t_done < min(s.t_done for s in first), \
            "the 6th stream was queued behind the others, not refused"
        assert not c.goaways and not c.closed, c.describe()
        after = c.get("/after")
        assert after.status == 200, after


# ---------------------------------------------------------------------------
# malformed requests: RST_STREAM PROTOCOL_ERROR, the connection goes on

MALFORMED = {
    "no-path": [(":method", "GET"), (":scheme", "http"), (":authority", "mf.local")],
    "no-method": [(":scheme", "http"), (":authority", "mf.local"), (":path", "/")],
    "uppercase-name": [(":method", "GET"), (":scheme", "http"), (":authority", "mf.local"),
                       (":path", "/"), ("X-Upper", "1")],
    "connection-header": [(":method", "GET"), (":scheme", "http"), (":authority", "mf.local"),
                          (":path", "/"), ("connection", "keep-alive")],
    "te-not-trailers": [(":method", "GET"), (":scheme", "http"), (":authority", "mf.local"),
                        (":path", "/"), ("te", "gzip")],
    "pseudo-after-regular": [(":method", "GET"), (":scheme", "http"), ("x-a", "1"),
                             (":authority", "mf.local"), (":path", "/")],
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_request_stream_error(env, case):
    rec = env.recording_backend("mf")
    px = start_proxy(env, {"mf.local": (rec.port, H1)})
    with H2Client(px.port, authority="mf.local") as c:
        s = c.wait_stream(c.send_headers(MALFORMED[case], end_stream=True))
        assert s.done, f"no answer to a malformed request ({case}): {s} {c.describe()}"
        print(f"malformed ({case}): status={s.status} reset={err_name(s.reset_code)}")
        assert s.reset_code == PROTOCOL_ERROR or s.status == 400, \
            f"want RST_STREAM PROTOCOL_ERROR (a 400 first is allowed): {s}"
        assert not c.goaways and not c.closed, f"the connection must go on: {c.describe()}"
        s2 = c.get("/next")
        assert s2.status == 200, (s2, c.describe())
    assert rec.wait_for(1)
    time.sleep(0.2)
    assert [r.target for r in rec.requests] == ["/next"], \
        f"a malformed request was forwarded: {[r.target for r in rec.requests]}"


# ---------------------------------------------------------------------------
# back-pressure: a slow h2 reader holds the proxy's memory bounded

@pytest.mark.parametrize("upstream", [H1, H2], ids=["h1-upstream", "h2-upstream"])
def test_slow_h2_reader_memory_bounded(env, upstream):
    size = 40_000_000
    e = env.echo(name="slow")
    px = start_proxy(env, {"slow.local": (e.port, upstream)})
    fresh_get_ok(px, "slow.local", "/warm")
    rss0 = rss_kb(px.proc.pid)
    with H2Client(px.port, authority="slow.local", window=65535, auto_ack=False) as c:
        sid = c.request(f"/bytes/{size}")
        st = c.streams[sid]
        assert c.wait(lambda: len(st.data) >= 65535 or st.done, 10), (st, c.describe())
        # the client's window is used up: nothing more can come until it is re-opened
        samples = []
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            c.pump(0.25)
            samples.append(rss_kb(px.proc.pid))
        stalled_at = len(st.data)
        rss_max = max(samples)
        c.auto_ack = True
        c.ack_data()
        c.wait(lambda: st.done, 30)
        print(f"slow reader ({upstream} upstream): got {stalled_at} bytes while stalled, RSS "
              f"{rss0} kB -> max {rss_max} kB while stalled; then {len(st.data)} bytes in total")
        assert stalled_at <= 65535, f"the proxy overran the client's flow-control window: {stalled_at}"
        assert rss_max - rss0 < 16 * MIB_KB, \
            f"RSS grew {rss_max - rss0} kB while the client read nothing (buffering the body?)"
        assert st.ended and st.status == 200 and len(st.data) == size, (st, c.describe())


# ---------------------------------------------------------------------------
# drain

def test_drain_goaway_inflight_completes(env):
    e = env.echo(name="dr")
    px = start_proxy(env, {"dr.local": (e.port, H1)})
    with H2Client(px.port, authority="dr.local") as c:
        before = c.get("/before")
        assert before.status == 200, (before, c.describe())
        sid = c.request("/delay/1500")
        c.wait(lambda: False, timeout=0.3)           # let it reach the backend
        t_sig = time.monotonic()
        px.proc.signal(signal.SIGTERM)
        c.wait(lambda: c.streams[sid].done, timeout=10)
        st = c.streams[sid]
        c.wait_closed(5)
        rc = px.proc.wait(5)
        t_exit = time.monotonic()
        figures = (f"drain: GOAWAYs {[(err_name(code), last, round(t - t_sig, 2)) for code, last, t in c.goaways]}"
                   f" (s after SIGTERM), stream done after "
                   f"{(st.t_done - t_sig) if st.t_done else None}, connection closed "
                   f"{(c.t_closed - t_sig) if c.t_closed else None}, exit rc={rc} after "
                   f"{t_exit - t_sig:.2f}s")
        print(figures)
        assert c.goaways, f"no GOAWAY on drain. {figures} {c.describe()}"
        assert st.status == 200 and st.ended, f"in-flight stream did not complete: {st}. {figures}"
        assert st.json()["path"] == "/delay/1500", st
        assert c.goaways[0][2] < st.t_done, \
            f"GOAWAY must come while the stream is still in flight, not after it. {figures}"
        assert all(last >= sid for _, last, _ in c.goaways), \
            f"a GOAWAY's last-stream-id excludes the in-flight stream {sid}. {figures}"
        assert all(code == 0 for code, _, _ in c.goaways), f"drain GOAWAY should be NO_ERROR. {figures}"
        assert rc is not None, f"proxy still running 5 s after the stream completed. {figures}"
        assert rc == 0, f"exit code {rc}. {figures}"
