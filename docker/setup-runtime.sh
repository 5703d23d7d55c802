#!/bin/sh
# Sets up a Debian bookworm root filesystem for Remora: installs the packages of each LIST
# (one per line, `#` comments; docker/runtime-packages.txt, docker/init-packages.txt),
# creates the user and group remora (1337, the uid the iptables rules exempt) and
# /etc/remora/credentials. Run as root inside the target: by docker/Dockerfile (runtime-base
# and init stages) and by docker/rootfs.sh (in a chroot), so the image and the smoke-tested
# rootfs get the same commands. Usage: setup-runtime.sh LIST...
set -eu
[ $# -gt 0 ] || { echo "usage: setup-runtime.sh LIST..." >&2; exit 2; }
packages=$(sed 's/#.*//' "$@" | xargs)
[ -n "$packages" ] || { echo "setup-runtime.sh: no package in $*" >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $packages
apt-get clean
rm -rf /var/lib/apt/lists/*
getent group remora >/dev/null || groupadd --gid 1337 remora
getent passwd remora >/dev/null ||
  useradd --uid 1337 --gid 1337 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin remora
mkdir -p /etc/remora/credentials
