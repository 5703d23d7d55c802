#!/usr/bin/env python3
"""HTTP/1.1 keep-alive proxying: Remora against HAProxy, same backend, same load.

One backend (`remora echo`, or nginx with --backend nginx), and in front of it:
  Remora   1 worker, access log off (mesh outbound listener, VirtualService
           for backend.local; wrk sends Host: backend.local)
  HAProxy  nbthread 1, mode http, option http-keep-alive, http-reuse always, no logs
wrk -t1 -cC -dDs runs against each in turn, interleaved (A B A B ...), --rounds times.
For each proxy: requests/s, the proxy's CPU time per request in microseconds
(utime+stime from /proc/PID/stat before and after the run, divided by the requests
wrk counted) and its RSS after the run; medians across rounds; ratios to HAProxy.
Prints a markdown table.

    python3 bench/h1_vs_haproxy.py [--remora PATH] [--duration 10] [--rounds 2]

Standard library only. Uses the release build by default when there is one.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def parse_wrk(out: str) -> dict:
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not m:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    r = {"requests": int(m.group(1)), "errors": 0, "non2xx": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] = sum(map(int, m.groups()))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Latency\s+([\d.]+\w+)", out)
    r["latency"] = m.group(1) if m else "?"
    return r


def remora_config(listen: int, backend: int) -> str:
    ports = [free_port() for _ in range(3)]
    return f"""apiVersion: remora.dev/v1alpha1
kind: Proxy
metadata: {{name: bench}}
spec:
  workers: 1
  admin: {{address: 127.0.0.1, port: {ports[0]}}}
  health: {{address: 127.0.0.1, port: {ports[1]}}}
  metrics: {{address: 127.0.0.1, port: {ports[2]}}}
  meshListeners:
    outbound: {{address: 127.0.0.1, port: {listen}}}
  accessLog: {{path: "off"}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: backend, namespace: default}}
spec:
  hosts: [backend.local]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {backend}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: backend, namespace: default}}
spec:
  hosts: [backend.local]
  http:
  - route:
    - destination: {{host: backend.local, port: {{number: 80}}}}
"""


def haproxy_config(listen: int, backend: int) -> str:
    return f"""global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend fe
    bind 127.0.0.1:{listen}
    default_backend be

backend be
    server s1 127.0.0.1:{backend}
"""


def nginx_config(port: int, tmp: Path) -> str:
    return f"""worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp};
    proxy_temp_path {tmp};
    fastcgi_temp_path {tmp};
    uwsgi_temp_path {tmp};
    scgi_temp_path {tmp};
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "hello from nginx\\n"; }}
    }}
}}
"""


def run_wrk(port: int, args) -> tuple[dict, str]:
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s",
           "-H", "Host: backend.local", f"http://127.0.0.1:{port}{args.path}"]
    w = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    if w.returncode != 0:
        raise RuntimeError(f"wrk failed: {w.stderr}")
    return parse_wrk(w.stdout), w.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_bin = REPO / ".build/release/remora"
    if not default_bin.exists():
        default_bin = REPO / ".build/debug/remora"
    ap.add_argument("--remora", default=os.environ.get("REMORA_BIN", str(default_bin)))
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=2, help="A B rounds (at least 2)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--path", default="/", help="request path (e.g. /bytes/4096)")
    ap.add_argument("--backend", choices=["echo", "nginx"], default="echo",
                    help="upstream: `remora echo` (default) or nginx if installed")
    ap.add_argument("--verbose", action="store_true", help="print each wrk output")
    args = ap.parse_args()
    args.rounds = max(2, args.rounds)

    remora = Path(args.remora)
    if not remora.is_file():
        print(f"remora binary not found: {remora}", file=sys.stderr)
        return 2
    if "debug" in remora.parts:
        print(f"note: {remora} is a debug build; numbers are not representative", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="remora-bench-"))
    procs: list[subprocess.Popen] = []
    ok = False

    def start(cmd, name):
        log = open(tmp / f"{name}.log", "wb")
        p = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append(p)
        return p

    try:
        bport = free_port()
        if args.backend == "nginx":
            nginx = shutil.which("nginx") or "/usr/sbin/nginx"
            if not Path(nginx).exists():
                print("nginx is not installed", file=sys.stderr)
                return 2
            (tmp / "nginx.conf").write_text(nginx_config(bport, tmp))
            backend = start([nginx, "-c", tmp / "nginx.conf"], "nginx")
            backend_desc = "nginx (1 worker)"
        else:
            backend = start([remora, "echo", "--listen", f"127.0.0.1:{bport}", "--name", "bench"], "echo")
            backend_desc = f"`{remora} echo`"
        wait_port(bport, backend)

        rport, hport = free_port(), free_port()
        (tmp / "remora.yaml").write_text(remora_config(rport, bport))
        (tmp / "haproxy.cfg").write_text(haproxy_config(hport, bport))
        rproc = start([remora, "run", "-c", tmp / "remora.yaml"], "remora")
        hproc = start([HAPROXY, "-db", "-f", tmp / "haproxy.cfg"], "haproxy")
        wait_port(rport, rproc)
        wait_port(hport, hproc)

        targets = {"remora": (rport, rproc), "haproxy": (hport, hproc)}
        # warm-up: 1 s each, not counted
        for name, (port, _) in targets.items():
            subprocess.run(["wrk", "-t1", f"-c{args.connections}", "-d1s", "-H", "Host: backend.local",
                            f"http://127.0.0.1:{port}{args.path}"], capture_output=True, timeout=30)

        results: dict[str, list[dict]] = {n: [] for n in targets}
        for rnd in range(args.rounds):
            order = ["remora", "haproxy"] if rnd % 2 == 0 else ["haproxy", "remora"]
            for name in order:
                port, proc = targets[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {tmp}/{name}.log")
                c0 = cpu_seconds(proc.pid)
                res, out = run_wrk(port, args)
                c1 = cpu_seconds(proc.pid)
                res["cpu_us_per_req"] = (c1 - c0) * 1e6 / max(1, res["requests"])
                res["rss_mb"] = rss_mb(proc.pid)
                results[name].append(res)
                if args.verbose:
                    print(f"--- round {rnd + 1} {name}\n{out}", file=sys.stderr)
                print(f"round {rnd + 1} {name:8s} {res['rps']:>10.0f} req/s  "
                      f"{res['cpu_us_per_req']:6.1f} us/req  RSS {res['rss_mb']:.1f} MB  "
                      f"errors {res['errors']} non-2xx {res['non2xx']}", file=sys.stderr)

        med = {n: {k: statistics.median(r[k] for r in rs)
                   for k in ("rps", "cpu_us_per_req", "rss_mb")}
               for n, rs in results.items()}
        errs = {n: sum(r["errors"] + r["non2xx"] for r in rs) for n, rs in results.items()}
        h = med["haproxy"]
        print()
        print(f"HTTP/1.1 keep-alive, wrk -t1 -c{args.connections} -d{args.duration}s {args.path}, "
              f"{args.rounds} interleaved rounds, medians; backend {backend_desc}; "
              f"remora {remora}; {os.cpu_count()} cores")
        print()
        print("| proxy | requests/s | CPU µs/request | RSS MB | req/s vs HAProxy | CPU/req vs HAProxy | errors+non-2xx |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for n in ("remora", "haproxy"):
            m = med[n]
            print(f"| {n} | {m['rps']:.0f} | {m['cpu_us_per_req']:.1f} | {m['rss_mb']:.1f} | "
                  f"{m['rps'] / h['rps']:.2f} | {m['cpu_us_per_req'] / h['cpu_us_per_req']:.2f} | {errs[n]} |")
        ok = True
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
