#!/usr/bin/env python3
"""Remora against HAProxy, nginx and nghttpx, side by side, on this machine.

One backend (one nginx worker returning a 3-byte body, over HTTP/1.1 and on a second
port over h2c; etcd for gRPC), and in front of it each proxy with one worker, access
logs off and a keep-alive upstream pool (proxies.py); for the TLS scenarios the proxies
also terminate TLS with one certificate made at the start of the run. The
scenarios (scenarios.py) run against every proxy in the same run: the interleaved ones
once per round with the order rotated each round, the others once at the end. Medians
across rounds are written to bench/RESULTS.md and drawn in bench/results.png
(report.py); the raw per-round figures go to bench/out/results.json.

Run through `bench/run` (or `make bench`), which installs the tools, builds Remora and
the allocation counter, then calls this with the same arguments.
"""
from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import resource
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

import loadgen
import procfs
import proxies
import report
import scenarios
from scenarios import Context, Target

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

_running: list[proxies.Running] = []


def _stop_all() -> None:
    while _running:
        _running.pop().stop()


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def start(proxy: proxies.Proxy, tmp: Path, backends: proxies.BackendPorts, env: dict | None = None,
          tag: str = "", tls: proxies.TlsFiles | None = None) -> proxies.Running:
    full_env = dict(os.environ, **env) if env else None
    r = proxy.start(tmp, proxies.free_port(), backends, full_env, tag, tls)
    _running.append(r)
    r.wait_listening()
    return r


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--remora", type=Path, default=Path(os.environ.get("REMORA_BIN", REPO / ".build/release/remora")))
    ap.add_argument("--proxies", default="remora,haproxy,nginx,nghttpx", help="comma-separated subset")
    ap.add_argument("--scenarios", default=",".join(s.key for s in scenarios.SCENARIOS),
                    help="comma-separated subset of: " + ", ".join(s.key for s in scenarios.SCENARIOS))
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (medians are taken)")
    ap.add_argument("--duration", type=float, default=4, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (16-64)")
    ap.add_argument("--rate", type=int, default=1000, help="fixed-rate scenario: requests/s in all")
    ap.add_argument("--rate-seconds", type=float, default=4, help="fixed-rate scenario: seconds measured")
    ap.add_argument("--h2-duration", type=float, default=2,
                    help="seconds per h2load run in the HTTP/2 scenarios (h2c, h2c-h2, grpc, h2-tls)")
    ap.add_argument("--h2-clients", type=int, default=8, help="HTTP/2 scenarios: h2load connections (-c)")
    ap.add_argument("--h2-streams", type=int, default=32,
                    help="HTTP/2 scenarios: requests in flight per connection (h2load -m)")
    ap.add_argument("--tls-handshakes", type=int, default=2000,
                    help="tls-handshakes scenario: connections (full handshakes) per run")
    ap.add_argument("--tls-clients", type=int, default=32, help="tls-handshakes scenario: connections at a time")
    ap.add_argument("--no-resumption-lib", type=Path, default=BENCH / "out/no_resumption.so")
    ap.add_argument("--idle-connections", type=int, default=10000)
    ap.add_argument("--alloc-requests", type=int, default=20000)
    ap.add_argument("--alloc-lib", type=Path, default=BENCH / "out/count_malloc.so")
    ap.add_argument("--out", type=Path, default=BENCH, help="where RESULTS.md and results.png go")
    ap.add_argument("--wait-quiet", type=float, default=0,
                    help="wait up to this many seconds for the 1-minute load average to fall below 0.7")
    return ap.parse_args()


def wait_quiet(limit_s: float) -> None:
    end = time.monotonic() + limit_s
    while time.monotonic() < end and os.getloadavg()[0] >= 0.7:
        time.sleep(5)


def main() -> int:
    args = parse_args()
    if "remora" in args.proxies.split(",") and not args.remora.is_file():
        print(f"remora binary not found: {args.remora} (swift build -c release)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(_stop_all)
    # 10 000 idle connections are held by this process: soft fd limit up to the hard one
    resource.setrlimit(resource.RLIMIT_NOFILE, (proxies.FD_LIMIT, proxies.FD_LIMIT))

    wanted = set(args.proxies.split(","))
    chosen = [p for p in proxies.all_proxies(args.remora) if p.name in wanted]
    keys = args.scenarios.split(",")
    unknown = set(keys) - {s.key for s in scenarios.SCENARIOS}
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    unknown = wanted - {p.name for p in proxies.all_proxies(args.remora)}
    if unknown:
        print(f"unknown proxy(ies): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    chosen_sc = [s for s in scenarios.SCENARIOS if s.key in keys]
    if "allocations" in keys and not args.alloc_lib.is_file():
        print(f"allocation counter not built: {args.alloc_lib} (bench/run builds it)", file=sys.stderr)
        return 2
    if "tls-handshakes" in keys and not args.no_resumption_lib.is_file():
        print(f"TLS interposer not built: {args.no_resumption_lib} (bench/run builds it)", file=sys.stderr)
        return 2

    wait_quiet(args.wait_quiet)
    started = time.time()
    load_start = os.getloadavg()
    cpu_start = (procfs.cpu_totals(), os.times())
    tmp = BENCH / "out" / "logs"
    shutil.rmtree(tmp, ignore_errors=True)   # the previous run's logs
    tmp.mkdir(parents=True)

    try:
        backend = proxies.Backend()
        bports = proxies.BackendPorts(http1=proxies.free_port(), h2c=proxies.free_port(), grpc=proxies.free_port())
        brun = backend.start(tmp, bports)
        _running.append(brun)
        brun.wait_listening()
        grpc_backend = None
        if any(s.protocol == "grpc" for s in chosen_sc):
            grpc_backend = proxies.GrpcBackend()
            grun = grpc_backend.start(tmp, bports.grpc)
            _running.append(grun)
            grun.wait_listening()
        # the TLS scenarios: one certificate for every proxy, made anew (bench/out/tls)
        tls_files = None
        if any(s.protocol in ("https", "tls") for s in chosen_sc):
            tls_files = proxies.make_certificate(BENCH / "out" / "tls")
        ctx = Context(tmp=tmp, backend_port=bports.http1, connections=args.connections, duration=args.duration,
                      rate=args.rate, rate_seconds=args.rate_seconds,
                      idle_connections=args.idle_connections, alloc_requests=args.alloc_requests,
                      alloc_lib=args.alloc_lib.resolve(), backends=bports,
                      h2_clients=args.h2_clients, h2_streams=args.h2_streams, h2_duration=args.h2_duration,
                      tls_handshakes=args.tls_handshakes, tls_clients=args.tls_clients,
                      no_resumption_lib=args.no_resumption_lib.resolve(),
                      start_proxy=lambda proxy, env: start(proxy, tmp, bports, env, "-alloc"))

        targets: list[Target] = []
        for p in chosen:
            targets.append(Target(p.name, p.label, start(p, tmp, bports), p))
        # The HTTP/2 and TLS scenarios run against a second instance of each proxy (the
        # same configuration, plus the TLS listener when a TLS scenario runs): the HTTP/1.1
        # instance's figures, RSS after load and per idle connection included, stay those
        # of a process that only ever saw HTTP/1.1 load (after 256-stream HTTP/2 runs,
        # memory the allocator keeps would absorb part of the idle connections' cost) and
        # that has no TLS listener.
        h2_protocols = {s.protocol for s in chosen_sc} - {"http1"}
        h2_targets: dict[str, Target] = {}
        for p in chosen:
            if h2_protocols & p.protocols:
                with_tls = tls_files if {"https", "tls"} & h2_protocols & p.protocols else None
                h2_targets[p.name] = Target(p.name, p.label, start(p, tmp, bports, tag="-h2", tls=with_tls), p)
        time.sleep(1.0)
        for t in targets:
            t.rss_idle_kb = t.running.rss_kb()
        direct = Target("direct", backend.label, brun, None)

        print(f"load average {load_start[0]:.2f}; warming up", file=sys.stderr)
        for t in targets:
            warm = loadgen.wrk(t.running.port, args.connections, 2)
            if warm["errors"]:
                raise RuntimeError(f"{t.name}: {warm['errors']} errors in the warm-up")

        def targets_for(sc) -> list[Target]:
            pool = targets if sc.protocol == "http1" else [h2_targets[t.name] for t in targets if t.name in h2_targets]
            ts = [t for t in pool if sc.protocol in t.proxy.protocols]
            return ([direct] if sc.direct else []) + ts

        # each scenario checks each of its targets before any round (HTTP/2: a target that
        # cannot do the protocol stops the bench here)
        for sc in chosen_sc:
            for t in targets_for(sc):
                if t.proxy is not None:
                    sc.warm_up(t, ctx)
                    t.running.check()

        runs: dict[str, dict[str, list[dict]]] = {s.key: {} for s in chosen_sc}

        def record(sc, t, res, rnd):
            runs[sc.key].setdefault(t.name, []).append(res)
            shown = "  ".join(f"{c.key}={c.fmt.format(res[c.key])}" for c in sc.columns[:4] if c.key in res)
            print(f"[{time.time() - started:5.0f}s] {sc.key:14s} round {rnd} {t.name:8s} {shown}",
                  file=sys.stderr)

        gauge_ms: list[float] = []
        for rnd in range(1, args.rounds + 1):
            gauge_ms.append(gauge_host())
            for sc in (s for s in chosen_sc if s.rounds == "interleaved"):
                ts = targets_for(sc)
                k = (rnd - 1) % len(ts)
                this_round = {}
                for t in ts[k:] + ts[:k]:
                    res = sc.run(t, ctx)
                    t.running.check()
                    this_round[t.name] = res
                sc.after_round(this_round)
                for t in ts:
                    record(sc, t, this_round[t.name], rnd)
        for sc in (s for s in chosen_sc if s.rounds == "once"):
            for t in targets_for(sc):
                if t.proxy is None:
                    continue
                record(sc, t, sc.run(t, ctx), 1)

        medians = {key: {name: median_of(rs) for name, rs in by_t.items()} for key, by_t in runs.items()}
        load_end = os.getloadavg()
        others_pct, steal_pct = machine_share(*cpu_start)
        meta = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
            "seconds": round(time.time() - started),
            "machine": procfs.machine(),
            "load_start": [round(x, 2) for x in load_start],
            "load_end": [round(x, 2) for x in load_end],
            "steal_pct": round(steal_pct, 1),
            "others_pct": round(others_pct, 1),
            "gauge_ms": [round(g, 1) for g in gauge_ms],
            "tools": proxies.tool_versions(),
            "backend": f"{backend.version()}, one worker, `return 200 \"ok\\n\"` (3-byte body), on an HTTP/1.1 "
                       f"port and an h2c port (`listen ... http2`)",
            "grpc_backend": grpc_backend.version() if grpc_backend else None,
            "tls": ({"certificate": tls_files.describe, "openssl": proxies.openssl_version()}
                    if tls_files else None),
            "proxies": [{"name": p.name, "label": p.label, "version": p.version(),
                         "per_request": p.per_request, "settings": p.settings, "h2_settings": p.h2_settings,
                         "tls_settings": p.tls_settings, "protocols": sorted(p.protocols)} for p in chosen],
            "rounds": args.rounds,
            "scenarios": [{"key": s.key, "title": s.title, "describe": s.describe(ctx)} for s in chosen_sc],
        }
        (BENCH / "out").mkdir(exist_ok=True)
        (BENCH / "out" / "results.json").write_text(json.dumps({"meta": meta, "runs": runs, "medians": medians},
                                                               indent=1, default=str))
        args.out.mkdir(parents=True, exist_ok=True)
        report.write_markdown(args.out / "RESULTS.md", meta, chosen_sc, runs, medians)
        report.plot(args.out / "results.png", meta, medians)
        print(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'results.png'} "
              f"in {time.time() - started:.0f}s; load average {load_start[0]:.2f} -> {load_end[0]:.2f}",
              file=sys.stderr)
        return 0
    except Exception:
        print(f"logs in {tmp}", file=sys.stderr)
        raise
    finally:
        _stop_all()


def gauge_host() -> float:
    """CPU milliseconds this process takes for a fixed piece of work: on a VM whose host
    changes speed, it shows by how much (measured once per round)."""
    t = time.process_time()
    d: dict[int, int] = {}
    for i in range(300_000):
        d[i & 4095] = d.get(i & 4095, 0) + i
    return (time.process_time() - t) * 1000


def machine_share(start: dict, times_start) -> tuple[float, float]:
    """Of the machine's CPU time since `start` (all cores), the per cent used by
    processes other than this bench and what it started, and the per cent stolen by the
    hypervisor."""
    end = procfs.cpu_totals()
    t = os.times()   # this process + the children it has waited for (wrk, h2load, stopped proxies)
    ours = sum(t[:4]) - sum(times_start[:4]) + sum(r.cpu_seconds() for r in _running)
    others = (end["busy"] - start["busy"]) - ours
    span = max(1e-9, end["all"] - start["all"])
    return max(0.0, 100 * others / span), 100 * (end["steal"] - start["steal"]) / span


def median_of(rounds: list[dict]) -> dict:
    """The median of each figure across rounds, and its lowest as KEY_min."""
    out = {}
    for k in rounds[0]:
        vals = [r[k] for r in rounds if isinstance(r.get(k), (int, float)) and not math.isnan(r[k])]
        if vals:
            out[k] = statistics.median(vals)
            out[f"{k}_min"] = min(vals)
    return out


if __name__ == "__main__":
    sys.exit(main())
