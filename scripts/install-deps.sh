#!/usr/bin/env bash
# Installs what building, testing and the demo need, if missing (Debian packages — dnsmasq-base
# is the name server of Tests/e2e/test_dns.py, not a service; pytest,
# grpcio and h2 for the end-to-end tests' gRPC and raw HTTP/2 peers; kubernetes-validate
# and dockerfile for the deployment tests).
# Idempotent: a machine that has everything installs nothing.
set -euo pipefail
packages=(libnghttp2-dev libssl-dev libre2-dev libc-ares-dev pkg-config curl wrk haproxy nghttp2-client iptables iproute2 dnsmasq-base)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
pip_missing=()
python3 -c 'import pytest' 2>/dev/null || pip_missing+=(pytest)
python3 -c 'import grpc' 2>/dev/null || pip_missing+=(grpcio)
python3 -c 'import h2' 2>/dev/null || pip_missing+=(h2)
# Tests/e2e/test_deploy.py: the Kubernetes schemas (offline; pinned, as each release ships
# a window of Kubernetes versions) and Docker's own Dockerfile parser
python3 -c 'import kubernetes_validate' 2>/dev/null || pip_missing+=(kubernetes-validate==1.37.0)
python3 -c 'import dockerfile' 2>/dev/null || pip_missing+=(dockerfile)
if [ ${#pip_missing[@]} -gt 0 ]; then
  echo "installing (pip): ${pip_missing[*]}"
  python3 -m pip install -q "${pip_missing[@]}"
fi
