#!/usr/bin/env bash
# The feature-branch runbook (../../../shared/examples/README.md) in one command per
# VirtualService: `remora ctl route set|unset` (SPEC §4.4) for a browser session.
#
#   feature-branch.sh start SESSION_ID [FEATURE]   route SESSION_ID to the FEATURE branch (default myfeature)
#   feature-branch.sh stop  SESSION_ID             route SESSION_ID back to the mainline
#   feature-branch.sh show                         print both VirtualServices as they are in force
#
# At the ingress gateway the session cookie picks the frontend branch; inside the mesh the
# `userid` header (gRPC metadata) picks the adservice branch. Each `route set` replaces any
# earlier rule for the same session, and uses If-Match, so operators running this at the
# same time for different sessions never overwrite each other.
#
# Environment (defaults in brackets):
#   REMORA          the remora binary [remora]
#   REMORA_ADMIN    the admin API [http://127.0.0.1:15000]
#   FRONTEND_VS     [default/frontend]    ADSERVICE_VS   [default/adservice]
#   FRONTEND_HOST   [frontend]            ADSERVICE_HOST [adservice]   (branch host: HOST-FEATURE)
#   SESSION_COOKIE  [shop_session-id]     USERID_HEADER  [userid]
set -euo pipefail

REMORA=${REMORA:-remora}
FRONTEND_VS=${FRONTEND_VS:-default/frontend}
ADSERVICE_VS=${ADSERVICE_VS:-default/adservice}
FRONTEND_HOST=${FRONTEND_HOST:-frontend}
ADSERVICE_HOST=${ADSERVICE_HOST:-adservice}
SESSION_COOKIE=${SESSION_COOKIE:-shop_session-id}
USERID_HEADER=${USERID_HEADER:-userid}
# Kubernetes readiness probes send this session (Cookie: shop_session-id=x-readiness-probe):
# it must always reach the mainline, never a branch.
PROBE_SESSION=x-readiness-probe

usage() {
    sed -n '5,7p' "$0" | sed 's/^#  *//' >&2
    exit 2
}

session_arg() {
    local s=${1:-}
    [[ -n $s ]] || usage
    if [[ ! $s =~ ^[A-Za-z0-9._-]+$ ]]; then
        echo "feature-branch.sh: session id '$s' has characters other than letters, digits, '.', '_', '-'" >&2
        exit 2
    fi
    if [[ $s == "$PROBE_SESSION" ]]; then
        echo "feature-branch.sh: '$s' is the readiness probes' session; it must stay on the mainline" >&2
        exit 2
    fi
    printf '%s' "$s"
}

ctl() { "$REMORA" ctl "$@"; }

case ${1:-} in
start)
    session=$(session_arg "${2:-}")
    feature=${3:-myfeature}
    ctl route set --virtual-service "$FRONTEND_VS" --cookie "$SESSION_COOKIE=$session" \
        --destination "$FRONTEND_HOST-$feature"
    rc=0
    ctl route set --virtual-service "$ADSERVICE_VS" --header "$USERID_HEADER=$session" \
        --destination "$ADSERVICE_HOST-$feature" || rc=$?
    if [[ $rc != 0 ]]; then
        echo "feature-branch.sh: adservice not switched; taking the frontend rule back" >&2
        ctl route unset --virtual-service "$FRONTEND_VS" --cookie "$SESSION_COOKIE=$session" || true
        exit $rc
    fi
    ;;
stop)
    session=$(session_arg "${2:-}")
    rc=0
    ctl route unset --virtual-service "$FRONTEND_VS" --cookie "$SESSION_COOKIE=$session" || rc=$?
    ctl route unset --virtual-service "$ADSERVICE_VS" --header "$USERID_HEADER=$session" || rc=$?
    exit $rc
    ;;
show)
    ctl get virtualservices "$FRONTEND_VS" -o yaml
    echo ---
    ctl get virtualservices "$ADSERVICE_VS" -o yaml
    ;;
*)
    usage
    ;;
esac
