"""Keep-alive load with wrk through the proxy: no socket errors, no non-2xx, and RSS
stays flat (a leak of ~100 bytes per request fails the test)."""
import re
import subprocess
import threading
import time

from harness import http_request, rss_kb

DURATION = 10
BASELINE_AT = 2.0


def parse_wrk(out: str) -> dict:
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    assert m, f"cannot parse wrk output:\n{out}"
    res = {"requests": int(m.group(1)), "socket_errors": {}, "non2xx": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                        map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    return res


def test_parse_wrk_output():
    sample = """Running 10s test @ http://127.0.0.1:1/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   1.00ms    0.50ms  10.00ms   90.00%
    Req/Sec    10.00k     1.00k   12.00k    70.00%
  99500 requests in 10.00s, 20.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   9950.00
Transfer/sec:      2.00MB
"""
    r = parse_wrk(sample)
    assert r["requests"] == 99500 and r["non2xx"] == 7 and r["rps"] == 9950.0
    assert r["socket_errors"] == {"connect": 0, "read": 3, "write": 0, "timeout": 1}


def test_keepalive_load_rss_flat(env):
    e = env.echo(name="load")
    px = env.proxy({"backend.local": e.port})
    # warm path and sanity
    r = http_request(px.port, "GET", "/", host="backend.local")
    assert r.status == 200, r

    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sampler():
        while not stop.is_set():
            try:
                samples.append((time.monotonic() - t0, rss_kb(px.proc.pid)))
            except (OSError, RuntimeError):
                return
            stop.wait(0.25)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    try:
        w = subprocess.run(["wrk", "-t1", "-c16", f"-d{DURATION}s", "--latency",
                            "-H", "Host: backend.local", px.url("/")],
                           capture_output=True, text=True, timeout=DURATION + 30)
        wrk_end = time.monotonic() - t0
        time.sleep(1.0)
        assert px.proc.alive(), (f"proxy exited (rc={px.proc.returncode}) during or right after "
                                 f"the load; wrk said:\n{w.stdout}")
        after = rss_kb(px.proc.pid)
    finally:
        stop.set()
        th.join(2)

    assert w.returncode == 0, f"wrk rc={w.returncode}\n{w.stdout}\n{w.stderr}"
    res = parse_wrk(w.stdout)
    assert px.proc.alive(), "proxy died under load"
    assert res["requests"] > 1000, f"only {res['requests']} requests completed:\n{w.stdout}"
    assert not any(res["socket_errors"].values()), f"socket errors {res['socket_errors']}:\n{w.stdout}"
    assert res["non2xx"] == 0, f"{res['non2xx']} non-2xx/3xx responses:\n{w.stdout}"

    during = [(t, kb) for t, kb in samples if t <= wrk_end]
    base = next(((t, kb) for t, kb in during if t >= BASELINE_AT), None)
    assert base is not None, f"no RSS sample after {BASELINE_AT}s: {samples}"
    last = during[-1]
    window = max(0.001, last[0] - base[0])
    reqs_in_window = res["requests"] * min(1.0, window / DURATION)
    # a 100 B/request leak grows RSS by 100*reqs_in_window; allow half of that,
    # clamped to [1 MiB, 4 MiB] so allocator noise alone cannot fail the test
    allowed_kb = min(4096.0, max(1024.0, 50 * reqs_in_window / 1024))
    growth_during = last[1] - base[1]
    growth_after = after - base[1]
    info = (f"rps={res['rps']:.0f} requests={res['requests']} RSS: base {base[1]} kB at "
            f"{base[0]:.1f}s, last {last[1]} kB at {last[0]:.1f}s, after {after} kB; "
            f"allowed growth {allowed_kb:.0f} kB (~{reqs_in_window:.0f} requests in window; "
            f"a 100 B/request leak would add {100 * reqs_in_window / 1024:.0f} kB)")
    print(info)
    assert growth_during <= allowed_kb, "RSS grew under steady load: " + info
    assert growth_after <= allowed_kb, "RSS after the load is above the baseline: " + info
