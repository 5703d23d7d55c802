#!/usr/bin/env bash
# `make run`: two echo backends (frontend, frontend-myfeature) and Remora in front of them
# with config/demo.yaml. Ctrl-C stops all three.
set -euo pipefail
bin=${REMORA_BIN:-.build/release/remora}
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
"$bin" echo --listen 127.0.0.1:18081 --name frontend & pids+=($!)
"$bin" echo --listen 127.0.0.1:18082 --name frontend-myfeature & pids+=($!)
"$bin" echo --listen 127.0.0.1:18083 --name adservice & pids+=($!)
"$bin" echo --listen 127.0.0.1:18084 --name adservice-myfeature & pids+=($!)
"$bin" run -c config/demo.yaml & pids+=($!)
proxy=$!
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8080/ && break; sleep 0.1; done
cat <<'TXT'

Remora is serving the demo gateway on http://127.0.0.1:8080. Try:

  # the mainline
  curl -si http://127.0.0.1:8080/ | grep x-echo-name            # x-echo-name: frontend
  # your feature branch, chosen by your browser session cookie
  curl -si -H 'Cookie: theme=dark; shop_session-id=4f9e715d-fe56-4a1e-964b-b00b607e7695' \
       http://127.0.0.1:8080/ | grep x-echo-name                # x-echo-name: frontend-myfeature

  # inside the mesh: a sidecar's outbound call to adservice, by the userid gRPC metadata header
  curl -si -H 'Host: adservice' http://127.0.0.1:15001/ | grep x-echo-name   # x-echo-name: adservice
  curl -si -H 'Host: adservice' -H 'userid: 4f9e715d-fe56-4a1e-964b-b00b607e7695' \
       http://127.0.0.1:15001/ | grep x-echo-name               # x-echo-name: adservice-myfeature

Ctrl-C stops the demo.
TXT
wait "$proxy"
