#!/usr/bin/env python3
"""HTTP/1.1 keep-alive throughput, Remora against HAProxy only (the first bench, kept
under its old name). It is now one scenario of the full suite, `bench/run` (make
bench); this runs just that scenario and those two proxies, and writes its table to
bench/out/h1_vs_haproxy/RESULTS.md. Options are bench.py's (--rounds, --duration,
--connections, --remora ...).

    python3 bench/h1_vs_haproxy.py [--duration 10] [--rounds 3]
"""
import os
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
args = [sys.executable, str(here / "bench.py"), "--proxies", "remora,haproxy",
        "--scenarios", "h1_throughput", "--out", str(here / "out" / "h1_vs_haproxy"), *sys.argv[1:]]
os.execv(sys.executable, args)
