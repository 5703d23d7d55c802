#!/usr/bin/env bash
# Builds the runtime image's root filesystem without a container engine, and smoke-tests
# the proxy inside it (docker/README.md, "Checking the image without Docker").
#
#   1. a Debian bookworm minbase (debootstrap), cached in .build-rootfs/base;
#   2. plus what docker/setup-runtime.sh does in the Dockerfile's runtime stage: exactly the
#      packages of docker/runtime-packages.txt, the user remora (uid/gid 1337),
#      /etc/remora/credentials; cached in .build-rootfs/rootfs until either file changes;
#   3. plus the release binary with the Swift runtime linked statically (built here with
#      `swift build -c release --static-swift-stdlib --scratch-path .build-static`, or the
#      file given with --binary), stripped of debug info as in the image;
#   4. the smoke test: `ldd` inside the rootfs finds every library; `remora echo` and
#      `remora run` start in it as uid 1337, each in its own mount and PID namespace (PID 1
#      there) with the root filesystem read-only, on free ports of the host's loopback; from
#      the host, curl gets 200 from /healthz/ready, 200 from the echo through a mesh route,
#      418 from a regex-matched directResponse (RE2), 200 over HTTPS with HTTP/2 (OpenSSL
#      and nghttp2) and the request counted in /stats/prometheus; SIGTERM makes it exit 0.
#
# Usage: docker/rootfs.sh [--binary PATH] [--no-smoke] [--rebuild]
#   --binary PATH  use this binary instead of building .build-static/release/remora
#   --no-smoke     build the rootfs only
#   --rebuild      throw the cached base and rootfs away first
# Environment: REMORA_ROOTFS_DIR (default .build-rootfs), DEBIAN_MIRROR (default: the
# mirror of this machine's apt sources, else http://deb.debian.org/debian), SWIFT (swift).
# Needs root (debootstrap, chroot, unshare) and network access to the Debian mirror on the
# first run; installs debootstrap with apt-get when it is missing.
# Exit: 0 all checks passed; 1 a check failed; 2 usage or environment error.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
suite=bookworm
uid=1337
binary=""
smoke=1
rebuild=0
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --no-smoke) smoke=0; shift ;;
    --rebuild) rebuild=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "rootfs.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

cache=${REMORA_ROOTFS_DIR:-$repo/.build-rootfs}
base=$cache/base
root=$cache/rootfs
list=$here/runtime-packages.txt
t_start=$(date +%s)
phase_start=$t_start

say() { printf 'rootfs: %s\n' "$*"; }
fail() { printf 'rootfs: FAIL: %s\n' "$*" >&2; exit 1; }
phase_done() {
  local now; now=$(date +%s)
  say "$1 ($((now - phase_start)) s)"
  phase_start=$now
}

[ "$(id -u)" -eq 0 ] || { echo "rootfs.sh: needs root (debootstrap, chroot, unshare)" >&2; exit 2; }
for tool in chroot unshare curl openssl python3 readelf; do
  command -v "$tool" >/dev/null || { echo "rootfs.sh: $tool is missing" >&2; exit 2; }
done
chroot_bin=$(command -v chroot)
if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# The packages of the list, comments and blank lines dropped (as setup-runtime.sh reads it).
packages=$(sed 's/#.*//' "$list" | xargs)
[ -n "$packages" ] || { echo "rootfs.sh: $list lists no package" >&2; exit 2; }

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null \
             | grep -m1 -E '/debian/?$' || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi
security_mirror=${mirror%/debian}/debian-security
[ "${mirror%/debian}" != "$mirror" ] || security_mirror=http://deb.debian.org/debian-security

# Refuses to delete a directory that has anything mounted under it (a left-over /proc).
remove_tree() {
  local dir=$1
  [ -e "$dir" ] || return 0
  if awk -v d="$(realpath "$dir")" '$5 == d || index($5, d "/") == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
    echo "rootfs.sh: something is mounted under $dir; unmount it first" >&2
    exit 2
  fi
  rm -rf "$dir"
}

# Runs a command in a chroot of $1 with /proc, in private mount and PID namespaces, so that
# nothing stays mounted when it ends, however it ends.
in_chroot() {
  local dir=$1; shift
  unshare --mount --pid --fork --kill-child sh -c \
    'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$dir" "$@"
}

mkdir -p "$cache"
# one run at a time per cache (a test run and a manual run would share the rootfs)
exec 9> "$cache/.lock"
if command -v flock >/dev/null && ! flock -w 1800 9; then
  echo "rootfs.sh: $cache is locked by another run" >&2; exit 2
fi
if [ "$rebuild" -eq 1 ]; then
  remove_tree "$root"; remove_tree "$base"; rm -f "$cache"/*.stamp
fi

# -- 1. the base: debootstrap --variant=minbase
base_key="$suite minbase $mirror"
if [ ! -f "$cache/base.stamp" ] || [ "$(cat "$cache/base.stamp")" != "$base_key" ]; then
  say "debootstrap --variant=minbase $suite from $mirror (a few minutes)"
  remove_tree "$root"; remove_tree "$base"; remove_tree "$base.tmp"; rm -f "$cache"/*.stamp
  # in a private mount namespace: whatever debootstrap mounts is gone when it ends
  if ! unshare --mount debootstrap --variant=minbase "$suite" "$base.tmp" "$mirror" > "$cache/debootstrap.log" 2>&1; then
    tail -20 "$cache/debootstrap.log" >&2
    fail "debootstrap failed (full log: $cache/debootstrap.log)"
  fi
  mv "$base.tmp" "$base"
  echo "$base_key" > "$cache/base.stamp"
  phase_done "base ready"
else
  say "base: cached ($base)"
fi

# -- 2. the runtime packages, the user, the image's directories
root_key="$base_key | $(cat "$list" "$here/setup-runtime.sh" | sha256sum | cut -d' ' -f1) | security $security_mirror"
if [ ! -f "$cache/rootfs.stamp" ] || [ "$(cat "$cache/rootfs.stamp")" != "$root_key" ]; then
  say "installing into the rootfs: $packages"
  remove_tree "$root"; remove_tree "$root.tmp"; rm -f "$cache/rootfs.stamp"
  cp -a "$base" "$root.tmp"
  # the sources of the debian:bookworm-slim image (the Dockerfile's runtime base)
  rm -f "$root.tmp/etc/apt/sources.list"
  cat > "$root.tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cp /etc/resolv.conf "$root.tmp/etc/resolv.conf"
  # the script and list the Dockerfile's runtime stage runs
  mkdir -p "$root.tmp/tmp/remora-setup"
  cp "$here/setup-runtime.sh" "$list" "$root.tmp/tmp/remora-setup/"
  if ! in_chroot "$root.tmp" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
       sh /tmp/remora-setup/setup-runtime.sh /tmp/remora-setup/runtime-packages.txt > "$cache/packages.log" 2>&1; then
    tail -20 "$cache/packages.log" >&2
    fail "installing the runtime packages failed (full log: $cache/packages.log)"
  fi
  rm -rf "$root.tmp/tmp/remora-setup"
  : > "$root.tmp/etc/resolv.conf"
  in_chroot "$root.tmp" dpkg-query -W -f='${Package} ${Version}\n' > "$cache/installed-packages.txt"
  mv "$root.tmp" "$root"
  echo "$root_key" > "$cache/rootfs.stamp"
  phase_done "rootfs ready ($(wc -l < "$cache/installed-packages.txt") packages installed)"
else
  say "rootfs: cached ($root)"
fi

# -- 3. the binary: Swift runtime and Foundation linked statically
if [ -z "$binary" ]; then
  say "swift build -c release --static-swift-stdlib --scratch-path .build-static (minutes when cold)"
  (cd "$repo" && "${SWIFT:-swift}" build -c release --static-swift-stdlib --scratch-path "$repo/.build-static" \
     --product remora > "$cache/swift-build.log" 2>&1) \
    || { tail -30 "$cache/swift-build.log" >&2; fail "swift build failed (full log: $cache/swift-build.log)"; }
  binary=$repo/.build-static/release/remora
  phase_done "binary built"
fi
[ -x "$binary" ] || { echo "rootfs.sh: no executable at $binary" >&2; exit 2; }
needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | xargs)
say "NEEDED: $needed"
for lib in $needed; do
  case "$lib" in
    libswift*|libFoundation*|lib_Foundation*|libdispatch*|libBlocksRuntime*)
      fail "$binary links $lib dynamically: build it with --static-swift-stdlib" ;;
  esac
done
install -m 0755 "$binary" "$root/usr/local/bin/remora"
strip --strip-debug "$root/usr/local/bin/remora" 2>/dev/null || say "strip not available: binary copied with its debug info"
say "binary: $(du -h "$root/usr/local/bin/remora" | cut -f1) in the rootfs"

# everything NEEDED resolves inside the rootfs, to the packages of the list
ldd_out=$(in_chroot "$root" /usr/bin/ldd /usr/local/bin/remora) || fail "ldd failed in the rootfs: $ldd_out"
printf '%s\n' "$ldd_out" | sed 's/^/rootfs:   /'
if printf '%s\n' "$ldd_out" | grep -q 'not found'; then fail "a library is missing from the rootfs"; fi

if [ "$smoke" -eq 0 ]; then
  say "done in $(( $(date +%s) - t_start )) s (smoke test skipped)"
  exit 0
fi

# -- 4. the smoke test
read -r p_listen p_https p_admin p_health p_metrics p_echo < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(6):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
smoke_dir=/etc/remora-smoke
mkdir -p "$root$smoke_dir/credentials/smoke"
rm -f "$root$smoke_dir"/*.yaml
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=smoke.local \
  -addext subjectAltName=DNS:smoke.local -keyout "$root$smoke_dir/credentials/smoke/tls.key" \
  -out "$root$smoke_dir/credentials/smoke/tls.crt" 2>/dev/null
chown -R "$uid:$uid" "$root$smoke_dir/credentials"
cat > "$root$smoke_dir/smoke.yaml" <<EOF
apiVersion: remora.dev/v1alpha1
kind: Proxy
metadata: {name: smoke}
spec:
  workers: 2
  admin: {address: 127.0.0.1, port: $p_admin}
  health: {address: 127.0.0.1, port: $p_health}
  metrics: {address: 127.0.0.1, port: $p_metrics}
  meshListeners:
    outbound: {address: 127.0.0.1, port: $p_listen}
  credentialsDir: $smoke_dir/credentials
  accessLog: {path: stdout}
  drainTimeout: 2s
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: smoke-gateway}
spec:
  servers:
  - port: {number: $p_https, name: https, protocol: HTTPS}
    bind: 127.0.0.1
    tls: {mode: SIMPLE, credentialName: smoke}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: smoke}
spec:
  hosts: [smoke.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $p_echo}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: smoke}
spec:
  hosts: [smoke.local]
  gateways: [mesh, smoke-gateway]
  http:
  - name: regex-branch
    match:
    - headers:
        x-smoke: {regex: "br[a-z]+ch"}
    directResponse: {status: 418, body: {string: "re2 matched"}}
  - name: mainline
    route:
    - destination: {host: smoke.local}
EOF

out=$(in_chroot "$root" /usr/local/bin/remora validate -c "$smoke_dir" /etc/remora 2>&1) \
  || fail "remora validate in the rootfs: $out"
say "validate: $out"

logs=$cache/smoke-logs
mkdir -p "$logs"
# Each started command as "UNSHARE_PID:COMMAND_PID". `unshare --fork` ignores SIGTERM and
# --kill-child does not survive chroot's change of user, so signals go to the command itself.
procs=()
stop_proc() { # UNSHARE_PID:COMMAND_PID; SIGTERM, then SIGKILL after 5 s
  local u=${1%%:*} c=${1##*:} i
  kill -TERM "$c" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$u" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$c" 2>/dev/null || true
  wait "$u" 2>/dev/null || true
}
cleanup() { local p; for p in "${procs[@]}"; do stop_proc "$p"; done; }
trap cleanup EXIT

# Starts "$@" in the rootfs as uid 1337, PID 1 of its own PID namespace, root read-only,
# with the image's environment only. Sets `started` to the PID of `unshare` (whose exit
# status is the command's) and `started_cmd` to the command's own (host) PID, its child.
start_in_root() {
  local name=$1 i; shift
  unshare --mount --pid --fork sh -c '
      r=$0 c=$1; shift
      mount --bind "$r" "$r" && mount -o remount,bind,ro "$r" && mount -t proc proc "$r/proc" &&
      exec env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/nonexistent "$c" --userspec=1337:1337 "$r" "$@"' \
    "$root" "$chroot_bin" "$@" > "$logs/$name.log" 2>&1 &
  started=$!
  started_cmd=""
  for i in $(seq 50); do
    started_cmd=$(awk '{print $1}' "/proc/$started/task/$started/children" 2>/dev/null || true)
    [ -n "$started_cmd" ] && break
    sleep 0.1
  done
  [ -n "$started_cmd" ] || { kill -KILL "$started" 2>/dev/null; show_logs; fail "$name did not start"; }
  procs+=("$started:$started_cmd")
}
show_logs() { local f; for f in "$logs"/*.log; do echo "--- $f"; tail -20 "$f"; done >&2; }
check() { # description, expected, actual
  if [ "$2" = "$3" ]; then say "ok: $1 ($3)"; else show_logs; fail "$1: expected $2, got $3"; fi
}

logs=$cache/smoke-logs
rm -rf "$logs"; mkdir -p "$logs"
start_in_root echo /usr/local/bin/remora echo --listen "127.0.0.1:$p_echo" --name smoke-echo
start_in_root proxy /usr/local/bin/remora run -c "$smoke_dir"
proxy_pid=$started
proxy_child=$started_cmd

status=000
for _ in $(seq 100); do
  status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$p_health/healthz/ready" || true)
  [ "$status" = 200 ] && break
  kill -0 "$proxy_pid" 2>/dev/null || break
  sleep 0.1
done
check "GET /healthz/ready" 200 "$status"
check "remora runs as uid" "$uid" "$(awk '/^Uid:/ {print $2}' "/proc/$proxy_child/status")"
check "remora is PID 1 of its namespace" 1 "$(awk '/^NSpid:/ {print $NF}' "/proc/$proxy_child/status")"

for _ in $(seq 50); do
  curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$p_echo/" && break
  sleep 0.1
done
reply=$(curl -s -D - -o /dev/null --max-time 5 -H 'Host: smoke.local' "http://127.0.0.1:$p_listen/smoke" || true)
check "GET through the mesh route" 200 "$(printf '%s' "$reply" | awk 'NR == 1 {print $2}')"
check "answered by" smoke-echo "$(printf '%s' "$reply" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-echo-name" {print $2}')"
check "regex match (RE2) to directResponse" 418 \
  "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Host: smoke.local' -H 'x-smoke: branch' "http://127.0.0.1:$p_listen/")"
check "HTTPS + HTTP/2 through the gateway (OpenSSL, nghttp2)" "200 2" \
  "$(curl -s -o /dev/null -w '%{http_code} %{http_version}' --max-time 5 --http2 \
       --cacert "$root$smoke_dir/credentials/smoke/tls.crt" --resolve "smoke.local:$p_https:127.0.0.1" \
       "https://smoke.local:$p_https/tls")"
metrics=$(curl -s --max-time 5 "http://127.0.0.1:$p_metrics/stats/prometheus" || true)
check "istio_requests_total in /stats/prometheus" yes "$(printf '%s' "$metrics" | grep -q '^istio_requests_total' && echo yes || echo no)"

t0=$(date +%s)
kill -TERM "$proxy_child"
for _ in $(seq 100); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$proxy_pid" 2>/dev/null && { show_logs; fail "remora still running 10 s after SIGTERM"; }
rc=0
wait "$proxy_pid" || rc=$?
procs=("${procs[0]}")  # the echo is left for the exit trap
check "exit status after SIGTERM (PID 1)" 0 "$rc"
say "drained and exited in $(( $(date +%s) - t0 )) s"

say "passed in $(( $(date +%s) - t_start )) s"
