"""bench/RESULTS.md (tables) and bench/results.png (the same figures at a glance)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import matplotlib.patches
import matplotlib.ticker

import scenarios

BASE = "haproxy"   # ratios are to this proxy


def _fmt(fmt: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return fmt.format(v)


def _ratio(v, base) -> str:
    if v is None or base in (None, 0) or any(isinstance(x, float) and math.isnan(x) for x in (v, base)):
        return "–"
    return f"{v / base:.2f}×"


def _table(sc, medians: dict, order: list[str], labels: dict[str, str]) -> list[str]:
    head, rule = ["target"], ["---"]
    for c in sc.columns:
        head.append(c.header)
        rule.append("---:")
        if c.ratio:
            head.append("× HAProxy")
            rule.append("---:")
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(rule) + " |"]
    base = medians.get(BASE, {})
    for name in order:
        m = medians.get(name)
        if m is None:
            continue
        row = [f"**{labels[name]}**" if name == "remora" else labels[name]]
        for c in sc.columns:
            row.append(_fmt(c.fmt, m.get(c.key)))
            if c.ratio:
                row.append("–" if name == "direct" else _ratio(m.get(c.key), base.get(c.key)))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _spread(runs: dict, key: str, order: list[str], fmt: str) -> str:
    parts = []
    for name in order:
        rs = runs.get(name)
        if not rs or len(rs) < 2:
            continue
        vals = [r[key] for r in rs if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]
        if vals:
            parts.append(f"{name} " + " / ".join(fmt.format(v) for v in vals))
    return "; ".join(parts)


def _negotiated(runs: dict, order: list[str], labels: dict[str, str]) -> str:
    """TLS version, cipher, group and ALPN per target, from the rounds' figures (TLS
    scenarios only: the others have no such strings); all rounds must agree."""
    parts = []
    for name in order:
        seen = {", ".join(r[k] for k in ("tls_version", "tls_cipher", "tls_group", "alpn") if r.get(k))
                for r in runs.get(name, []) if r.get("tls_version")}
        if seen:
            parts.append(f"{labels[name]} {' / '.join(sorted(seen))}")
    return "; ".join(parts)


def write_markdown(path: Path, meta: dict, chosen: list, runs: dict, medians: dict) -> None:
    m = meta["machine"]
    order = ["direct"] + [p["name"] for p in meta["proxies"]]
    labels = {"direct": "direct (no proxy)", **{p["name"]: p["label"] for p in meta["proxies"]}}
    ls, le = meta["load_start"], meta["load_end"]
    g = meta.get("gauge_ms") or [float("nan")]
    gauge = (f"{' / '.join(f'{x:.0f}' for x in g)} ms (slowest {100 * (max(g) / min(g) - 1):.0f} % "
             f"above fastest)")
    out = [
        "# Benchmark results",
        "",
        f"Measured {meta['date']} by `make bench` ({meta['seconds']} s of measuring). Medians of "
        f"{meta['rounds']} interleaved rounds (the proxies' order rotates each round); the "
        f"“× HAProxy” columns divide by HAProxy's median (below 1 is better for CPU, latency and "
        f"memory; above 1 is better for requests/s).",
        "",
        f"**Machine:** {m['nproc']} × {m['cpu']} (`nproc` = {m['nproc']}), {m['memory_gib']} GiB, "
        f"kernel {m['kernel']}, {m['os']}. **Load average** (1/5/15 min) at the start "
        f"{ls[0]:.2f} / {ls[1]:.2f} / {ls[2]:.2f}, at the end {le[0]:.2f} / {le[1]:.2f} / {le[2]:.2f} "
        f"(the end figure includes the bench's own load). During the run, other processes used "
        f"{meta['others_pct']:.1f} % of the machine's CPU time and the hypervisor took "
        f"{meta['steal_pct']:.1f} % (steal).",
        "",
    ]
    if ls[0] >= 0.7:
        out += [f"⚠ The machine was busy when the run started (load average {ls[0]:.2f} ≥ 0.7): "
                "absolute figures may be noisier than usual; the interleaved ratios less so.", ""]
    out += [
        "The load generator, the backend and the proxy share these cores, so requests/s measures "
        "the whole chain on this machine; **CPU µs/request under load** (the proxy's own user+sys "
        "time from `/proc/PID/stat`, all its processes, divided by the requests served) is the figure "
        "that compares proxies. This machine is a VM whose host changes speed within minutes: "
        f"a fixed CPU-bound loop timed at the start of each round took {gauge}. The ratios between "
        "proxies measured in the same run hold; absolute microseconds move with the host, and the "
        "best round's CPU per request is the figure that repeats best between runs. Figures at "
        "1 000 requests/s, where every request wakes the proxy up, vary more.",
        "",
        "| proxy | version | settings | adds to each request |",
        "| --- | --- | --- | --- |",
    ]
    for p in meta["proxies"]:
        out.append(f"| {p['label']} | {p['version']} | {p['settings']} | {p['per_request']} |")
    out += ["", f"**Backend** (the same for all, and the *direct* target): {meta['backend']}. "
            + (f"**gRPC backend:** {meta['grpc_backend']} (Debian's etcd-server), one node, `GOMAXPROCS=1`. "
               if meta.get("grpc_backend") else "")
            + f"**Load generators:** {meta['tools']}, on the same machine.", ""]
    h2_keys = {"h2c", "h2c-h2", "grpc"}
    if any(sc.key in h2_keys and sc.key in medians for sc in chosen):
        out += ["HTTP/2 set-up (the h2c, h2c-h2 and grpc scenarios; the HTTP/1.1 path above is unchanged):", "",
                "| proxy | HTTP/2 scenarios it runs | how |", "| --- | --- | --- |"]
        for p in meta["proxies"]:
            runs_h2 = ", ".join(k for k in ("h2c", "h2c-h2", "grpc") if k in p.get("protocols", ()))
            out.append(f"| {p['label']} | {runs_h2 or '–'} | {p.get('h2_settings') or '–'} |")
        out.append("")
    tls_keys = {"h2-tls": "https", "tls-handshakes": "tls"}
    if meta.get("tls") and any(sc.key in tls_keys and sc.key in medians for sc in chosen):
        out += [f"TLS set-up (the h2-tls and tls-handshakes scenarios): every proxy serves the same certificate, "
                f"{meta['tls']['certificate']}, from a listener of its own in the second instance; "
                f"{meta['tls']['openssl']} on the client side (h2load) and in the Debian builds of HAProxy, nginx "
                f"and nghttpx.", "",
                "| proxy | TLS scenarios it runs | how |", "| --- | --- | --- |"]
        for p in meta["proxies"]:
            runs_tls = ", ".join(k for k, proto in tls_keys.items() if proto in p.get("protocols", ()))
            out.append(f"| {p['label']} | {runs_tls or '–'} | {p.get('tls_settings') or '–'} |")
        out.append("")

    for sc in chosen:
        if sc.key not in medians:
            continue
        described = next(s["describe"] for s in meta["scenarios"] if s["key"] == sc.key)
        out += [f"## {sc.title}", "", described + ".", ""]
        out += _table(sc, medians[sc.key], order, labels)
        absent = [labels[p["name"]] for p in meta["proxies"]
                  if "protocols" in p and sc.protocol not in p["protocols"]]
        if absent:
            out += ["", f"Not run (the proxy cannot do it): {', '.join(absent)}."]
        if sc.rounds == "interleaved":
            key = "cpu_us_per_req"
            spread = _spread(runs[sc.key], key, order, "{:.1f}")
            if spread:
                out += ["", f"CPU µs/request in each round: {spread}."]
            if sc.key == "h1_fixed_rate":
                spread = _spread(runs[sc.key], "p99_us", order, "{:.0f}")
                out += ["", f"p99 µs in each round: {spread}."]
            if sc.key == "tls-handshakes":
                key = "cpu_us_per_hs"
                spread = _spread(runs[sc.key], key, order, "{:.0f}")
                if spread:
                    out += ["", f"CPU µs/handshake in each round: {spread}."]
        negotiated = _negotiated(runs.get(sc.key, {}), order, labels)
        if negotiated:
            out += ["", f"Negotiated (the first connection of each run, as h2load reports it): {negotiated}."]
        out.append("")

    if scenarios.PENDING:
        out += ["## Pending scenarios", "",
                "These come when the protocol lands in Remora; each is one class in `bench/scenarios.py`:", ""]
        out += [f"- **{name}** — {why}." for name, why in scenarios.PENDING]
        out.append("")
    out += ["## Reproduce", "",
            "```sh",
            "make bench          # installs the tools, builds Remora (release) and bench/alloc, runs everything",
            "bench/run --help    # the same without make; options: --rounds, --duration, --proxies, --scenarios ...",
            "```", "",
            "Raw per-round figures: `bench/out/results.json`; each process's log: `bench/out/logs/`.", ""]
    path.write_text("\n".join(out))


# --------------------------------------------------------------------------- plot

COLORS = {"remora": "#d95f02", "haproxy": "#1b9e77", "nginx": "#7570b3", "nghttpx": "#e7298a",
          "direct": "#999999"}


def _bars(ax, names, series, title, ylabel, fmt):
    """Grouped bars: `series` is [(legend label, {name: value}, hatch)]; names on the x axis."""
    n = len(series)
    width = 0.8 / n
    for i, (label, values, hatch) in enumerate(series):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(names))]
        ys = [values.get(nm, float("nan")) for nm in names]
        bars = ax.bar(xs, [0 if math.isnan(y) else y for y in ys], width * 0.95,
                      color=[COLORS.get(nm, "#666") for nm in names], hatch=hatch,
                      edgecolor="white", label=label, alpha=1.0 if i == 0 else 0.75)
        for b, y in zip(bars, ys):
            if not math.isnan(y):
                ax.annotate(fmt.format(y), (b.get_x() + b.get_width() / 2, b.get_height()),
                            ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(y=0.3 if n > 1 else 0.15)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    if n > 1:
        # the bars' colours are the proxies'; the legend tells the series apart by hatch
        handles = [matplotlib.patches.Patch(facecolor="#aaaaaa", edgecolor="white", hatch=h, label=lbl)
                   for lbl, _, h in series]
        ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper center", ncol=n)


def plot(path: Path, meta: dict, medians: dict) -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [p["name"] for p in meta["proxies"]]
    get = lambda sc, key: {n: v.get(key, float("nan")) for n, v in medians.get(sc, {}).items()}
    h2 = [(k, label, hatch) for k, label, hatch in (("h2c", "h2c → HTTP/1.1", ""), ("h2c-h2", "h2c → h2c", "//"),
                                                     ("grpc", "gRPC unary", "xx"),
                                                     ("h2-tls", "h2+TLS → HTTP/1.1", "..")) if medians.get(k)]
    # (series, title, y label, value format); a panel is drawn when a scenario run gave it figures
    panels = [
        ([("under wrk load", get("h1_throughput", "cpu_us_per_req"), ""),
          ("at 1 000 req/s (varies more)", get("h1_fixed_rate", "cpu_us_per_req"), "//")],
         "CPU time per request (lower is better)", "µs of proxy CPU / request", "{:.1f}"),
        ([("requests/s", get("h1_throughput", "rps"), "")],
         "Throughput, HTTP/1.1 keep-alive (higher is better)", "requests/s", "{:,.0f}"),
        ([("p50", get("h1_fixed_rate", "added_p50_us"), ""), ("p90", get("h1_fixed_rate", "added_p90_us"), "//"),
          ("p99", get("h1_fixed_rate", "added_p99_us"), "xx")],
         "Latency added over direct, at 1 000 req/s (lower is better)", "µs", "{:.0f}"),
        ([("idle", get("memory", "rss_idle_mb"), ""), ("after load", get("memory", "rss_loaded_mb"), "//"),
          ("10 000 idle conns", get("memory", "rss_conns_mb"), "xx")],
         "Resident memory (lower is better)", "MiB (VmRSS)", "{:.0f}"),
        ([(label, get(k, "cpu_us_per_req"), hatch) for k, label, hatch in h2],
         "HTTP/2: CPU time per request, h2load load (lower is better)", "µs of proxy CPU / request", "{:.1f}"),
        ([(label, get(k, "rps"), hatch) for k, label, hatch in h2],
         "HTTP/2: throughput (higher is better; no bar: not run)", "requests/s", "{:,.0f}"),
        ([("CPU per handshake", get("tls-handshakes", "cpu_us_per_hs"), "")],
         "TLS: proxy CPU per full handshake + 1 request (lower is better)", "µs of proxy CPU / handshake",
         "{:.0f}"),
        ([("handshakes/s", get("tls-handshakes", "hs_per_s"), "")],
         "TLS: full handshakes/s, h2load-bound on 2 cores (higher is better)", "handshakes/s", "{:,.0f}"),
    ]
    panels = [p for p in panels if any(not math.isnan(v) for _, vals, _ in p[0] for v in vals.values())]
    rows = max(1, math.ceil(len(panels) / 2))
    fig, axes = plt.subplots(rows, 2, figsize=(12, 4.25 * rows), squeeze=False)
    for ax, (series, title, ylabel, fmt) in zip([a for row in axes for a in row], panels):
        _bars(ax, names, series, title, ylabel, fmt)
    for ax in [a for row in axes for a in row][len(panels):]:
        ax.set_visible(False)
    m = meta["machine"]
    alloc = medians.get("allocations", {}).get("remora", {}).get("allocs_per_req")
    sub = f"; Remora: {alloc:.3f} heap allocations/request" if alloc is not None else ""
    protos = "HTTP/1.1 and HTTP/2" if h2 else "HTTP/1.1"
    if medians.get("h2-tls") or medians.get("tls-handshakes"):
        protos += ", TLS"
    fig.suptitle(f"Remora vs HAProxy, nginx, nghttpx — 1 worker each, {protos} — {meta['date']}\n"
                 f"{m['nproc']} × {m['cpu']}, kernel {m['kernel']}, load avg {meta['load_start'][0]:.2f}, "
                 f"medians of {meta['rounds']} rounds{sub}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (4.25 * rows)))   # ~0.5 in for the title
    fig.savefig(path, dpi=110)
    plt.close(fig)
