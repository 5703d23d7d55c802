"""The scenarios. Each one measures one target (a proxy, or the backend directly) and
returns a dict of figures; bench.py runs it against every target and takes medians.

A scenario is a small class: `key`, `title`, the `protocol` a proxy must support,
`rounds` ("interleaved": once per round, the targets' order rotated each round, so
drift on a shared machine spreads over all of them; "once": a single measurement per
target after the rounds, for figures that do not drift, such as memory), whether the
backend is measured directly too (`direct`), and `run(target, ctx)`.

Adding one: write the class, give it the `protocol` it needs, add it to SCENARIOS, and
list that protocol in the `protocols` of the proxies that support it (proxies.py; a
proxy's `endpoints` says where the load goes for each). `warm_up(target, ctx)` runs
once per target before the rounds: it is where a scenario checks that a target works
at all, so a target that cannot do the protocol stops the bench at once, loudly,
instead of after minutes of other scenarios. report.py prints a table per scenario
from its `columns` (and draws the figures named in report.plot).

The HTTP/2 scenarios (h2c, h2c-h2, grpc, h2-tls) all run h2load with the same shape of
load (H2Load): every response must be 2xx (gRPC: also the 7-byte message, and grpc-status
0 in the trailers at warm-up; h2-tls: ALPN h2 and TLS 1.3), else the bench stops with
h2load's output and the proxy's log. tls-handshakes (TlsHandshakes) opens connections
that each do a full TLS handshake and one request.
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from pathlib import Path

import loadgen
import procfs
from proxies import BACKEND_BODY, BackendPorts, GrpcBackend, Proxy, Running


@dataclass
class Target:
    name: str                 # "remora", "haproxy", ..., "direct"
    label: str
    running: Running
    proxy: Proxy | None       # None for the backend measured directly
    rss_idle_kb: int = 0      # right after start-up, before any request


@dataclass
class Context:
    tmp: Path
    backend_port: int
    connections: int = 32
    duration: float = 4.0
    rate: int = 1000
    rate_clients: int = 10
    rate_seconds: float = 4.0
    idle_connections: int = 10000
    alloc_warmup: int = 5000
    alloc_requests: int = 20000
    alloc_lib: Path | None = None
    start_proxy: object = None    # callable(proxy, env) -> Running (bench.py provides it)
    backends: BackendPorts | None = None
    h2_clients: int = 8           # h2load -c: HTTP/2 connections
    h2_streams: int = 32          # h2load -m: requests in flight on each
    h2_duration: float = 2.0      # h2load -D: seconds per run
    h2_warmup: float = 0.5        # h2load -D of the check at warm-up
    tls_handshakes: int = 2000    # tls-handshakes: connections (full handshakes) per run
    tls_clients: int = 32         # tls-handshakes: connections at a time
    no_resumption_lib: Path | None = None   # bench/tls/no_resumption.c, built by bench/run


@dataclass
class Column:
    key: str                  # key in the figures dict
    header: str
    fmt: str = "{:.1f}"
    ratio: bool = False       # print the ratio to HAProxy beside it


class Scenario:
    key = "?"
    title = "?"
    protocol = "http1"
    rounds = "interleaved"
    direct = False
    columns: list[Column] = []

    def describe(self, ctx: Context) -> str:
        return ""

    def run(self, target: Target, ctx: Context) -> dict:
        raise NotImplementedError

    def after_round(self, results: dict[str, dict]) -> None:
        """Called with one round's figures by target name (e.g. to subtract `direct`)."""

    def warm_up(self, target: Target, ctx: Context) -> None:
        """Once per target before the rounds (after the HTTP/1.1 warm-up): check that it
        works, raise if not."""


def _cpu_per_request(target: Target, fn, precise: bool = False) -> tuple[dict, float]:
    c0 = target.running.cpu_seconds(precise)
    res = fn()
    c1 = target.running.cpu_seconds(precise)
    return res, (c1 - c0) * 1e6 / max(1, res["requests"])


class H1Throughput(Scenario):
    key = "h1_throughput"
    title = "HTTP/1.1 keep-alive, small requests, as fast as the proxy goes"
    columns = [Column("rps", "requests/s", "{:,.0f}", ratio=True),
               Column("cpu_us_per_req", "CPU µs/request", "{:.1f}", ratio=True),
               Column("cpu_us_per_req_min", "CPU µs/request, best round", "{:.1f}", ratio=True),
               Column("p50_us", "p50 µs", "{:.0f}"), Column("p99_us", "p99 µs", "{:.0f}"),
               Column("rss_mb", "RSS after MiB", "{:.1f}"), Column("errors", "errors", "{:.0f}")]

    def describe(self, ctx: Context) -> str:
        return (f"`wrk -t1 -c{ctx.connections} -d{ctx.duration:g}s`, `GET /`, {ctx.connections} keep-alive "
                f"connections; CPU = the proxy's user+sys time during the run / requests completed. "
                f"*Best round*: the lowest of the rounds' CPU per request; the host under this VM "
                f"changes speed by 10–25 % within minutes, which only ever adds CPU time, so the best "
                f"round is the figure that repeats best from run to run")

    def run(self, target: Target, ctx: Context) -> dict:
        res, cpu = _cpu_per_request(target, lambda: loadgen.wrk(target.running.port, ctx.connections,
                                                                 ctx.duration))
        res["cpu_us_per_req"] = cpu
        res["rss_mb"] = target.running.rss_kb() / 1024
        return res


class H1FixedRate(Scenario):
    key = "h1_fixed_rate"
    title = "HTTP/1.1 latency at a fixed 1 000 requests/s"
    direct = True
    columns = [Column("p50_us", "p50 µs", "{:.0f}"), Column("p90_us", "p90 µs", "{:.0f}"),
               Column("p99_us", "p99 µs", "{:.0f}"),
               Column("added_p50_us", "added p50 µs", "{:.0f}", ratio=True),
               Column("added_p90_us", "added p90 µs", "{:.0f}"),
               Column("added_p99_us", "added p99 µs", "{:.0f}", ratio=True),
               Column("cpu_us_per_req", "CPU µs/request", "{:.1f}", ratio=True),
               Column("errors", "errors", "{:.0f}")]

    def describe(self, ctx: Context) -> str:
        return (f"`h2load --h1 -c{ctx.rate_clients} --rps={ctx.rate // ctx.rate_clients}` "
                f"({ctx.rate} requests/s in all, one in flight per connection), "
                f"{ctx.rate_seconds:g} s measured after 1 s of warm-up; percentiles from h2load's "
                f"per-request log; *added* = the proxy's percentile minus the direct one in the same round. "
                f"CPU here is the scheduler's nanosecond count (`se.sum_exec_runtime`, summed over the "
                f"proxy's threads; /proc/PID/stat's user+sys are scaled to it, but count 10 ms units, "
                f"too coarse for the ~0.2 s a proxy uses in this run). At this rate the proxies sleep "
                f"between requests, so CPU and latency include waking up, which on this VM depends on "
                f"the host: they vary between runs much more than the figures under load")

    def run(self, target: Target, ctx: Context) -> dict:
        res, cpu = _cpu_per_request(target, lambda: loadgen.h2load_fixed_rate(
            target.running.port, ctx.rate, ctx.rate_clients, ctx.rate_seconds), precise=True)
        res["cpu_us_per_req"] = cpu if target.proxy else float("nan")
        return res

    def after_round(self, results: dict[str, dict]) -> None:
        base = results.get("direct")
        for name, res in results.items():
            for pct in (50, 90, 99):
                res[f"added_p{pct}_us"] = (res[f"p{pct}_us"] - base[f"p{pct}_us"]) if base else float("nan")


class IdleConnections(Scenario):
    key = "memory"
    title = "Memory: idle, after load, and holding 10 000 idle keep-alive connections"
    rounds = "once"
    columns = [Column("rss_idle_mb", "RSS idle MiB", "{:.1f}", ratio=True),
               Column("rss_loaded_mb", "RSS after load MiB", "{:.1f}", ratio=True),
               Column("rss_conns_mb", "RSS with conns MiB", "{:.1f}", ratio=True),
               Column("kb_per_conn", "KiB per idle conn", "{:.1f}", ratio=True),
               Column("held", "conns still open", "{:,.0f}")]

    def describe(self, ctx: Context) -> str:
        return (f"RSS idle = after start-up, before any request; after load = after every "
                f"interleaved round; then {ctx.idle_connections:,} connections are opened, one request "
                f"made on each, and held idle: RSS with them, and (that − after load) / "
                f"{ctx.idle_connections:,}. RSS is VmRSS summed over the proxy's processes "
                f"(nginx: master + worker)")

    def run(self, target: Target, ctx: Context) -> dict:
        before = target.running.rss_kb()
        socks = loadgen.open_idle(target.running.port, ctx.idle_connections)
        try:
            time.sleep(1.0)
            with_conns = target.running.rss_kb()
            held = loadgen.still_open(socks)
        finally:
            loadgen.close_all(socks)
        target.running.check()
        return {"rss_idle_mb": target.rss_idle_kb / 1024, "rss_loaded_mb": before / 1024, "rss_conns_mb": with_conns / 1024,
                "kb_per_conn": (with_conns - before) / ctx.idle_connections, "held": held}


class Allocations(Scenario):
    """Heap allocations per proxied request on the HTTP/1.1 path: the proxy runs under
    bench/alloc/count_malloc.so (LD_PRELOAD), which counts malloc-family calls and C++
    operator new in a file mapped by every process of the proxy. After a warm-up, N
    requests go over connections that stay open, and (count after − count before) / N
    is reported; then connections that each carry one request are counted the same way."""
    key = "allocations"
    title = "Heap allocations per proxied request (HTTP/1.1 keep-alive)"
    rounds = "once"
    columns = [Column("allocs_per_req", "allocations/request", "{:.3f}"),
               Column("allocs_total", "allocations in all", "{:,.0f}"),
               Column("frees_per_req", "frees/request", "{:.3f}"),
               Column("malloc", "malloc", "{:.3f}"), Column("calloc", "calloc", "{:.3f}"),
               Column("realloc", "realloc", "{:.3f}"), Column("memalign", "aligned", "{:.3f}"),
               Column("new", "C++ new", "{:.3f}"),
               Column("allocs_per_conn", "allocations per new connection", "{:.1f}")]

    CONNECTIONS = 4        # keep-alive connections the N requests are spread over
    CYCLES = 1000          # new connections (one request each) for the per-connection figure
    ALLOC_KINDS = ("malloc", "calloc", "realloc", "memalign", "new")

    def describe(self, ctx: Context) -> str:
        return (f"Each proxy is restarted under `LD_PRELOAD=count_malloc.so`; warm-up: {ctx.alloc_warmup:,} "
                f"requests (`h2load --h1 -c{self.CONNECTIONS}`) and 100 per connection below; then exactly "
                f"{ctx.alloc_requests:,} requests, one at a time, over {self.CONNECTIONS} keep-alive "
                f"connections opened before counting (Python client). Counted: malloc, calloc, realloc, "
                f"posix_memalign/aligned_alloc/memalign/valloc and C++ operator new (nghttpx's comes from "
                f"jemalloc, not malloc), in all threads and processes. *Per new connection*: "
                f"{self.CYCLES:,} times connect, one request, close, one after the other (that includes "
                f"the request)")

    @staticmethod
    def read_counts(path: Path) -> dict:
        vals = struct.unpack("<8Q", path.read_bytes()[:64])
        keys = ("malloc", "calloc", "realloc", "memalign", "new", "free", "bootstrap", "mapped")
        return dict(zip(keys, vals))

    def _settled_counts(self, path: Path) -> dict:
        time.sleep(0.3)    # let the proxy finish what the last response started (closes, frees)
        return self.read_counts(path)

    def run(self, target: Target, ctx: Context) -> dict:
        counts = ctx.tmp / f"alloc-{target.name}.bin"
        env = {"LD_PRELOAD": str(ctx.alloc_lib), "COUNT_MALLOC_FILE": str(counts)}
        proc = ctx.start_proxy(target.proxy, env)
        try:
            loadgen.h2load_count(proc.port, ctx.alloc_warmup, self.CONNECTIONS)
            if not self.read_counts(counts)["mapped"]:
                raise RuntimeError(f"{target.name}: the interposer did not map {counts}")
            socks = loadgen.open_idle(proc.port, self.CONNECTIONS)
            try:
                loadgen.keepalive_requests(socks, 100 * self.CONNECTIONS)
                a = self._settled_counts(counts)
                n = loadgen.keepalive_requests(socks, ctx.alloc_requests)
                b = self._settled_counts(counts)
            finally:
                loadgen.close_all(socks)
            c = self._settled_counts(counts)
            loadgen.connection_cycles(proc.port, self.CYCLES)
            d = self._settled_counts(counts)
            proc.check()
        finally:
            proc.stop()
        per = {k: (b[k] - a[k]) / n for k in self.ALLOC_KINDS + ("free",)}
        total = sum(b[k] - a[k] for k in self.ALLOC_KINDS)
        per_conn = sum(d[k] - c[k] for k in self.ALLOC_KINDS) / self.CYCLES
        return {"allocs_per_req": total / n, "allocs_total": total, "frees_per_req": per["free"], **per,
                "allocs_per_conn": per_conn, "requests": n}


class H2Load(Scenario):
    """HTTP/2 over cleartext (prior knowledge) from h2load, as fast as the chain goes:
    ctx.h2_clients connections × ctx.h2_streams requests in flight, ctx.h2_duration
    seconds. CPU per request is the proxy's user+sys time over the run divided by the
    requests completed, as for HTTP/1.1. Mid-run, the connections the proxy holds to the
    backend are counted (how many streams it multiplexes onto one upstream
    connection). Any failed or non-2xx request stops the bench."""
    protocol = "?"
    path = "/"
    upstream = "?"            # which backend the proxy sends to (a BackendPorts field)
    response_bytes = len(BACKEND_BODY)   # DATA bytes in each response
    tls = False               # https:// (ALPN h2) instead of h2c
    columns = [Column("rps", "requests/s", "{:,.0f}", ratio=True),
               Column("cpu_us_per_req", "CPU µs/request", "{:.1f}", ratio=True),
               Column("cpu_us_per_req_min", "CPU µs/request, best round", "{:.1f}", ratio=True),
               Column("p50_ms", "p50 ms", "{:.2f}"), Column("p99_ms", "p99 ms", "{:.2f}"),
               Column("upstream_conns", "upstream conns", "{:.0f}"),
               Column("rss_mb", "RSS after MiB", "{:.1f}"), Column("errors", "errors", "{:.0f}")]

    def load(self, ctx: Context, seconds: float, target: Target, during=None) -> dict:
        ep = target.running.endpoints.get(self.protocol)
        if ep is None:
            raise RuntimeError(f"{target.name}: lists {self.protocol!r} in its protocols but has no endpoint for it")
        return loadgen.h2load_h2c(ep.port, ep.authority, ctx.h2_clients, ctx.h2_streams, seconds,
                                  path=self.path, during=during, tls=self.tls, **self.request(ctx))

    def request(self, ctx: Context) -> dict:
        return {}

    def check(self, target: Target, res: dict, out: str) -> None:
        if res["ok"] == 0 or res["errors"] or res["requests"] == 0:
            raise loadgen.LoadError(
                f"{target.name}: {self.key}: {res['requests']} requests completed, {res['ok']} answered 2xx, "
                f"{res['errors']} failed or not 2xx, {res['inflight']} unanswered when h2load stopped. "
                f"The {self.protocol} scenario needs every request to "
                f"succeed; leave it out with --scenarios, or the proxy with --proxies. Proxy log: "
                f"{target.running.log}; h2load said:\n{out}")
        # every response carries the backend's body; responses to requests still in
        # flight when -D ends may add some
        want = self.response_bytes
        if not want * res["requests"] <= res["data_bytes"] <= want * (res["requests"] + res["inflight"]):
            raise loadgen.LoadError(
                f"{target.name}: {self.key}: {res['data_bytes']} bytes of response DATA for {res['requests']} "
                f"responses (expected {want} each); proxy log {target.running.log}; h2load said:\n{out}")
        if self.tls:
            _check_tls(target, self.key, res, out, "h2")

    def warm_up(self, target: Target, ctx: Context) -> None:
        res = self.load(ctx, ctx.h2_warmup, target)
        self.check(target, res, res.pop("output"))

    def run(self, target: Target, ctx: Context) -> dict:
        ports = {getattr(ctx.backends, self.upstream)}
        count = lambda: procfs.upstream_connections(target.running.sid, ports)
        res, cpu = _cpu_per_request(target, lambda: self.load(ctx, ctx.h2_duration, target, during=count))
        self.check(target, res, res.pop("output"))
        res["upstream_conns"] = res.pop("during")
        res["cpu_us_per_req"] = cpu
        res["p50_ms"], res["p99_ms"] = res["p50_us"] / 1000, res["p99_us"] / 1000
        res["rss_mb"] = target.running.rss_kb() / 1024
        return res

    def _load_text(self, ctx: Context) -> str:
        return (f"`h2load -c{ctx.h2_clients} -m{ctx.h2_streams} -D{ctx.h2_duration:g}` "
                f"({ctx.h2_clients} connections × {ctx.h2_streams} streams = "
                f"{ctx.h2_clients * ctx.h2_streams} requests in flight)")

    _common = ("CPU = the proxy's user+sys time during the run / requests completed. Latency percentiles "
               "come from h2load's per-request log and, with every stream kept busy, are mostly queueing "
               "(in-flight requests / throughput), not the proxy's own delay. *Upstream conns*: the "
               "connections the proxy held to the backend halfway through the run (its sockets in "
               "/proc/net/tcp)")


class H2cThroughput(H2Load):
    key = "h2c"
    title = "HTTP/2 h2c client, HTTP/1.1 backend, as fast as the proxy goes"
    protocol = "h2c"
    upstream = "http1"

    def describe(self, ctx: Context) -> str:
        return (f"{self._load_text(ctx)}, h2c with prior knowledge (no Upgrade), `GET /`, "
                f"`:authority: backend.local`, to the same HTTP/1.1 backend as above: each request in flight "
                f"needs an upstream connection of its own (upstream conns = {ctx.h2_clients * ctx.h2_streams}). "
                + self._common)


class H2cH2Throughput(H2Load):
    key = "h2c-h2"
    title = "HTTP/2 h2c client, HTTP/2 (h2c) backend"
    protocol = "h2c-h2"
    upstream = "h2c"

    def describe(self, ctx: Context) -> str:
        return (f"{self._load_text(ctx)}, `GET /`, `:authority: backend-h2.local`, to the backend nginx's "
                f"h2c port (`listen ... http2`, `http2_max_concurrent_streams 512`, the same 3-byte answer): "
                f"*upstream conns* shows onto how many connections the proxy multiplexes the "
                f"{ctx.h2_clients * ctx.h2_streams} streams. "
                f"nginx is absent: it cannot proxy to an HTTP/2 upstream. " + self._common)


class GrpcUnary(H2Load):
    key = "grpc"
    title = "Unary gRPC, h2c both sides (etcd's gRPC health check)"
    protocol = "grpc"
    path = GrpcBackend.PATH
    upstream = "grpc"
    response_bytes = len(GrpcBackend.RESPONSE)

    def request(self, ctx: Context) -> dict:
        body = ctx.tmp / "grpc-request.bin"
        if not body.exists():
            body.write_bytes(GrpcBackend.REQUEST)
        return {"data": body, "headers": ("content-type: application/grpc", "te: trailers")}

    def warm_up(self, target: Target, ctx: Context) -> None:
        ep = target.running.endpoints[self.protocol]
        loadgen.grpc_call(ep.port, ep.authority, self.path, GrpcBackend.REQUEST, GrpcBackend.RESPONSE,
                          what=target.name)
        super().warm_up(target, ctx)

    def describe(self, ctx: Context) -> str:
        return (f"{self._load_text(ctx)}, each a unary call `POST {self.path}` with the 5-byte framed empty "
                f"`HealthCheckRequest`, `content-type: application/grpc`, `te: trailers` (`h2load -d`), "
                f"`:authority: backend-grpc.local`, to etcd (grpc-go, `GOMAXPROCS=1`), which answers "
                f"`SERVING` (7 bytes framed) and `grpc-status: 0` in the trailers. Checked: every response 2xx "
                f"with 7 bytes of DATA (h2load's traffic count), and, at warm-up, one call through each proxy "
                f"with `nghttp` for the exact message and `grpc-status: 0`. nginx proxies it with `grpc_pass`. "
                + self._common)


def _check_tls(target: Target, key: str, res: dict, out: str, alpn: str) -> None:
    """The connection h2load reports on must have negotiated TLS 1.3, the cipher suite
    offered and `alpn`: a proxy left at TLS 1.2, or answering h2 with http/1.1, would be
    measured doing something else."""
    if (res.get("tls_version"), res.get("alpn"), res.get("tls_cipher")) != ("TLSv1.3", alpn, loadgen.TLS13_CIPHER):
        raise loadgen.LoadError(
            f"{target.name}: {key}: negotiated {res.get('tls_version') or '?'}, {res.get('tls_cipher') or '?'}, ALPN "
            f"{res.get('alpn') or 'none'} (expected TLSv1.3, {loadgen.TLS13_CIPHER}, {alpn}); proxy log "
            f"{target.running.log}; h2load said:\n{out}")


class H2TlsThroughput(H2Load):
    key = "h2-tls"
    title = "HTTP/2 over TLS (ALPN h2), HTTP/1.1 backend, as fast as the proxy goes"
    protocol = "https"
    upstream = "http1"
    tls = True

    def describe(self, ctx: Context) -> str:
        return (f"{self._load_text(ctx)}, `https://`, ALPN h2 (h2load offers h2 first and does not verify the "
                f"certificate), TLS 1.3 with `{loadgen.TLS13_CIPHER}` (the one suite offered, `--tls13-ciphers`; "
                f"both checked in every run), `GET /`, `:authority: backend.local`, to the same "
                f"HTTP/1.1 backend as `h2c`: the same load as `h2c` with TLS added on the client side, so the "
                f"difference from the `h2c` table is the cost of TLS record encryption and decryption (the "
                f"{ctx.h2_clients} handshakes happen once, before the run). " + self._common)


class TlsHandshakes(Scenario):
    """Full TLS handshakes per second and the proxy's CPU per handshake: h2load --h1
    opens connections `tls_clients` at a time, each doing a full handshake (no
    resumption: no_resumption.so, checked) and one request with `Connection: close`,
    `tls_handshakes` in all. The proxy's CPU is the scheduler's nanosecond count over the
    run, divided by the handshakes; h2load's own CPU is measured too, because on a
    2-core machine the client, which costs more per handshake than the server, is often
    what limits handshakes/s."""
    key = "tls-handshakes"
    title = "Full TLS handshakes per second (new connection, one request each)"
    protocol = "tls"
    columns = [Column("hs_per_s", "handshakes/s", "{:,.0f}", ratio=True),
               Column("cpu_us_per_hs", "CPU µs/handshake", "{:.0f}", ratio=True),
               Column("cpu_us_per_hs_min", "CPU µs/handshake, best round", "{:.0f}", ratio=True),
               Column("proxy_cpu_pct", "proxy CPU %", "{:.0f}"),
               Column("client_cpu_us_per_hs", "h2load CPU µs/handshake", "{:.0f}"),
               Column("upstream_new_per_hs", "new upstream conns/handshake", "{:.2f}"),
               Column("resumed", "resumed", "{:.0f}"), Column("errors", "errors", "{:.0f}")]

    def load(self, target: Target, ctx: Context, count: int) -> dict:
        ep = target.running.endpoints.get(self.protocol)
        if ep is None:
            raise RuntimeError(f"{target.name}: lists {self.protocol!r} in its protocols but has no endpoint for it")
        if ctx.no_resumption_lib is None or not Path(ctx.no_resumption_lib).is_file():
            raise RuntimeError(f"no_resumption.so not built ({ctx.no_resumption_lib}): bench/run builds it")
        return loadgen.h2load_handshakes(ep.port, ep.authority, ctx.tls_clients, count, ctx.no_resumption_lib)

    def check(self, target: Target, res: dict, count: int) -> None:
        out = res.pop("output")
        if res["errors"] or res["ok"] != count or res["handshakes"] != count or res["resumed"]:
            raise loadgen.LoadError(
                f"{target.name}: {self.key}: {count} connections wanted: {res['handshakes']} handshakes "
                f"({res['resumed']} resumed: must be 0), {res['ok']} responses 2xx, {res['errors']} failed or not "
                f"2xx. Every connection must do a full handshake and get a 2xx; leave the scenario out with "
                f"--scenarios, or the proxy with --proxies. Proxy log: {target.running.log}; h2load said:\n{out}")
        _check_tls(target, self.key, res, out, "http/1.1")

    def warm_up(self, target: Target, ctx: Context) -> None:
        count = min(ctx.tls_handshakes, 300)
        self.check(target, self.load(target, ctx, count), count)

    def run(self, target: Target, ctx: Context) -> dict:
        a0 = loadgen.backend_accepts(ctx.backend_port)
        c0 = target.running.cpu_seconds(precise=True)
        res = self.load(target, ctx, ctx.tls_handshakes)
        cpu = target.running.cpu_seconds(precise=True) - c0
        accepted = loadgen.backend_accepts(ctx.backend_port) - a0 - 1   # less the second status request's
        self.check(target, res, ctx.tls_handshakes)
        n = max(1, res["handshakes"])
        res["cpu_us_per_hs"] = cpu * 1e6 / n
        res["proxy_cpu_pct"] = 100 * cpu / res["wall_s"]
        res["client_cpu_us_per_hs"] = res["client_cpu_s"] * 1e6 / n
        res["upstream_new_per_hs"] = accepted / n
        return res

    def describe(self, ctx: Context) -> str:
        return (f"`h2load --h1 -c{ctx.tls_clients} -n{ctx.tls_handshakes} --tls13-ciphers={loadgen.TLS13_CIPHER} "
                f"-H 'Connection: close' https://...` under `LD_PRELOAD=no_resumption.so`: "
                f"{ctx.tls_handshakes:,} connections, {ctx.tls_clients} at a time, each a full TLS 1.3 handshake "
                f"(ECDHE X25519, the ECDSA P-256 certificate), ALPN http/1.1, "
                f"one `GET /` proxied to the backend, then the proxy closes. "
                f"h2load alone would resume the previous session on every reconnection (measured: 1 968 of "
                f"2 000); the interposer removes the session before each handshake and counts the handshakes "
                f"that resumed anyway (*resumed*, must be 0; every connection must get a 2xx). *CPU "
                f"µs/handshake*: the proxy's CPU time over the run (the scheduler's nanosecond count, all its "
                f"threads) / handshakes, so it includes accepting, the request and closing: the comparable "
                f"figure. *proxy CPU %*: of one core over the run. *h2load CPU µs/handshake*: the client's "
                f"own user+sys per handshake. *New upstream conns/handshake*: the connections the backend "
                f"accepted during the run (its `stub_status`; only this proxy is under load) / handshakes: 0 "
                f"when the proxy forwards every request over its keep-alive pool, 1 when it opens (and "
                f"closes) a backend connection for each, which its CPU per handshake then includes. "
                f"The client does the more expensive half of a TLS 1.3 handshake "
                f"(and OpenSSL 3.0's per-connection overhead), so on 2 cores handshakes/s is mostly limited "
                f"by h2load (one thread) and the proxy runs below 100 %: handshakes/s is the chain's, CPU per "
                f"handshake the proxy's")


SCENARIOS: list[Scenario] = [H1Throughput(), H1FixedRate(), H2cThroughput(), H2cH2Throughput(), GrpcUnary(),
                             H2TlsThroughput(), TlsHandshakes(), IdleConnections(), Allocations()]

# Scenarios waiting for the protocol to land in Remora (RESULTS.md lists them; none now).
PENDING: list[tuple[str, str]] = []
