#!/usr/bin/env bash
# Builds the RemoraHTTP1 libFuzzer target and runs it for SECONDS (default 300).
# Usage: fuzz/run.sh [SECONDS] [extra libFuzzer flags...]   (from anywhere; works from the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${1:-300}"
shift || true

mkdir -p .build-fuzz fuzz/corpus-run
# -sanitize=fuzzer links libFuzzer and adds coverage instrumentation; address adds ASan.
# -O keeps overflow and bounds traps (only -Ounchecked removes them). lld avoids a flood of
# ld.gold "cannot export local symbol __asan_*" warnings.
swiftc -sanitize=fuzzer,address -parse-as-library -O -g -use-ld=lld \
    -module-name RemoraHTTP1Fuzz \
    Sources/RemoraHTTP1/*.swift fuzz/HTTP1Fuzz.swift \
    -o .build-fuzz/http1-fuzz

# The committed seeds are copied, never mutated: libFuzzer writes new inputs into corpus-run/.
cp -n fuzz/corpus/http1/* fuzz/corpus-run/ 2>/dev/null || true

# Let a failed precondition trap straight into libFuzzer's crash report; the Swift runtime's own
# backtracer reads memory ASan reports as an (unrelated) error and buries the real stack.
export SWIFT_BACKTRACE=enable=no

# Crash reproducers land in .build-fuzz/ (gitignored), named crash-<sha1>.
exec .build-fuzz/http1-fuzz \
    -max_total_time="$SECS" \
    -dict=fuzz/http1.dict \
    -max_len=4096 \
    -print_final_stats=1 \
    -artifact_prefix=.build-fuzz/ \
    "$@" \
    fuzz/corpus-run
