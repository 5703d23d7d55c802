#!/bin/sh
# Traffic interception for a Remora sidecar: the init container's job (Istio's istio-init).
# Installs, in the nat table of the current network namespace (the pod's), Istio's layout:
#
#   OUTPUT -p tcp -> REMORA_OUTPUT        the application's outbound TCP connections
#     excluded outbound ports                                   RETURN
#     -o lo -s 127.0.0.6                                        RETURN (Istio's inbound passthrough source)
#     -o lo ! -d 127.0.0.1, owner = proxy uid/gid               -> REMORA_INBOUND (the proxy calling its
#                                                                  own pod IP is inbound traffic)
#     -o lo, owner != proxy uid/gid                             RETURN (the app talking to itself)
#     owner = proxy uid/gid                                     RETURN (the proxy's own upstream calls)
#     -d 127.0.0.1/32                                           RETURN
#     excluded outbound CIDRs                                   RETURN
#     everything else                                           -> REMORA_REDIRECT: REDIRECT to 15001
#   PREROUTING -p tcp -> REMORA_INBOUND   connections arriving at the pod
#     excluded inbound ports (15021, 15090, 15000, ...)         RETURN
#     included ports ('*': all)                                 -> REMORA_IN_REDIRECT: REDIRECT to 15006
#
# The proxy recovers the pre-redirect destination with SO_ORIGINAL_DST (SPEC §3).
# Re-running replaces the rules (idempotent); --clean removes them; --dry-run prints the
# iptables commands instead of running them. IPv4 only.
#
# Usage: remora-iptables.sh [options]
#   --proxy-uid UID              uid whose traffic is never captured (default 1337)
#   --proxy-gid GID              gid whose traffic is never captured (default: the uid)
#   --outbound-port PORT         the proxy's outbound listener (default 15001)
#   --inbound-port PORT          the proxy's inbound listener (default 15006)
#   --exclude-outbound-ports P,..  destination ports never captured outbound (Istio's
#                                excludeOutboundPorts; default none)
#   --exclude-inbound-ports P,..   ports never captured inbound (Istio's excludeInboundPorts;
#                                default 15021,15090,15000; the proxy's own ports)
#   --exclude-outbound-cidrs C,..  destinations never captured outbound (excludeOutboundIPRanges)
#   --include-inbound-ports P,..|'*'  ports captured inbound (default '*'; '' disables
#                                inbound capture)
#   --iptables CMD               the iptables command (default: $REMORA_IPTABLES or iptables;
#                                e.g. iptables-legacy)
#   --dry-run                    print the commands, change nothing
#   --clean                      remove Remora's rules and chains, install nothing
#   -h, --help                   this text
# Options take their value as the next argument or after '=' (--proxy-uid=1337).
# Exit: 0 done; 1 iptables failed (not root / no CAP_NET_ADMIN, missing module, ...);
# 2 usage error.
set -eu

prog=remora-iptables.sh
proxy_uid=1337
proxy_gid=""
outbound_port=15001
inbound_port=15006
exclude_outbound_ports=""
exclude_inbound_ports="15021,15090,15000"
exclude_outbound_cidrs=""
include_inbound_ports="*"
ipt=${REMORA_IPTABLES:-iptables}
dry_run=0
clean=0

die_usage() { echo "$prog: $*" >&2; echo "$prog: see --help" >&2; exit 2; }
die() { echo "$prog: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -eu$/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# -- arguments
while [ $# -gt 0 ]; do
  opt=$1
  case "$opt" in
    --*=*) val=${opt#*=}; opt=${opt%%=*}; has_val=1 ;;
    *) val=""; has_val=0 ;;
  esac
  case "$opt" in
    --dry-run|--clean|-h|--help)
      [ $has_val -eq 0 ] || die_usage "$opt takes no value"
      case "$opt" in
        --dry-run) dry_run=1 ;;
        --clean) clean=1 ;;
        *) usage; exit 0 ;;
      esac
      shift; continue ;;
    --proxy-uid|--proxy-gid|--outbound-port|--inbound-port|--exclude-outbound-ports|\
    --exclude-inbound-ports|--exclude-outbound-cidrs|--include-inbound-ports|--iptables)
      if [ $has_val -eq 0 ]; then
        [ $# -ge 2 ] || die_usage "$opt needs a value"
        val=$2; shift
      fi
      shift ;;
    *) die_usage "unknown argument '$opt'" ;;
  esac
  case "$opt" in
    --proxy-uid) proxy_uid=$val ;;
    --proxy-gid) proxy_gid=$val ;;
    --outbound-port) outbound_port=$val ;;
    --inbound-port) inbound_port=$val ;;
    --exclude-outbound-ports) exclude_outbound_ports=$val ;;
    --exclude-inbound-ports) exclude_inbound_ports=$val ;;
    --exclude-outbound-cidrs) exclude_outbound_cidrs=$val ;;
    --include-inbound-ports) include_inbound_ports=$val ;;
    --iptables) ipt=$val ;;
  esac
done
[ -n "$proxy_gid" ] || proxy_gid=$proxy_uid

# -- validation
is_uint() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
check_port() { # NAME VALUE
  if ! is_uint "$2" || [ ${#2} -gt 5 ] || [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
    die_usage "$1: '$2' is not a port number (1-65535)"
  fi
}
check_port_list() { # NAME LIST
  old_ifs=$IFS; IFS=,
  for p in $2; do
    IFS=$old_ifs
    p=$(echo "$p" | tr -d ' ')
    [ -z "$p" ] || check_port "$1" "$p"
  done
  IFS=$old_ifs
}
check_owner() { # NAME VALUE: a number or a user/group name
  case "$2" in
    '') die_usage "$1 must not be empty" ;;
    *[!A-Za-z0-9_.-]*) die_usage "$1: '$2' is neither a number nor a name" ;;
  esac
}
check_cidr_list() { # NAME LIST
  old_ifs=$IFS; IFS=,
  for c in $2; do
    IFS=$old_ifs
    c=$(echo "$c" | tr -d ' ')
    [ -n "$c" ] || continue
    addr=${c%/*}
    if [ "$addr" != "$c" ]; then
      len=${c#*/}
      if ! is_uint "$len" || [ "$len" -gt 32 ]; then
        die_usage "$1: '$c' has a bad prefix length (0-32)"
      fi
    fi
    # four dot-separated numbers 0-255
    rest=$addr.; n=0
    while [ -n "$rest" ]; do
      o=${rest%%.*}; rest=${rest#*.}; n=$((n + 1))
      if ! is_uint "$o" || [ ${#o} -gt 3 ] || [ "$o" -gt 255 ]; then
        die_usage "$1: '$c' is not an IPv4 address or CIDR"
      fi
    done
    [ $n -eq 4 ] || die_usage "$1: '$c' is not an IPv4 address or CIDR"
  done
  IFS=$old_ifs
}
check_owner --proxy-uid "$proxy_uid"
check_owner --proxy-gid "$proxy_gid"
check_port --outbound-port "$outbound_port"
check_port --inbound-port "$inbound_port"
check_port_list --exclude-outbound-ports "$exclude_outbound_ports"
check_port_list --exclude-inbound-ports "$exclude_inbound_ports"
check_cidr_list --exclude-outbound-cidrs "$exclude_outbound_cidrs"
[ "$include_inbound_ports" = "*" ] || check_port_list --include-inbound-ports "$include_inbound_ports"

# -- running iptables
chains="REMORA_OUTPUT REMORA_REDIRECT REMORA_INBOUND REMORA_IN_REDIRECT"

if [ $dry_run -eq 0 ]; then
  command -v "$ipt" >/dev/null 2>&1 || die "'$ipt' not found: install iptables (Debian: apt-get install iptables)"
  if ! err=$("$ipt" -t nat -S OUTPUT 2>&1 >/dev/null); then
    die "cannot read the nat table with '$ipt' (needs root or CAP_NET_ADMIN in the pod's network namespace): $err"
  fi
fi

# nat RULE...: run (or print) one iptables command on the nat table
nat() {
  if [ $dry_run -eq 1 ]; then
    echo "$ipt -t nat $*"
    return 0
  fi
  if ! err=$("$ipt" -t nat "$@" 2>&1); then
    die "failed: $ipt -t nat $* : $err"
  fi
}

# Remove every rule that jumps to a Remora chain from the built-in chains, then the chains.
remove_rules() {
  if [ $dry_run -eq 1 ]; then
    echo "# remove earlier Remora rules (jumps from PREROUTING/OUTPUT, then the chains), if any"
    return 0
  fi
  for builtin in PREROUTING OUTPUT; do
    listing=$("$ipt" -t nat -S "$builtin") || die "cannot list the nat chain $builtin"
    # "-A OUTPUT -p tcp -j REMORA_OUTPUT" -> "-D OUTPUT -p tcp -j REMORA_OUTPUT"
    jumps=$(printf '%s\n' "$listing" | grep -E -- '-j REMORA_[A-Z_]+( |$)' | sed 's/^-A /-D /') || true
    while read -r line; do
      [ -n "$line" ] || continue
      # shellcheck disable=SC2086  # word splitting of the rule is intended
      nat $line
    done <<EOF
$jumps
EOF
  done
  for c in $chains; do
    if "$ipt" -t nat -S "$c" >/dev/null 2>&1; then
      nat -F "$c"
    fi
  done
  for c in $chains; do
    if "$ipt" -t nat -S "$c" >/dev/null 2>&1; then
      nat -X "$c"
    fi
  done
}

remove_rules
if [ $clean -eq 1 ]; then
  [ $dry_run -eq 1 ] || echo "$prog: removed Remora's interception rules"
  exit 0
fi

# -- install
for c in $chains; do nat -N "$c"; done
nat -A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports "$outbound_port"
nat -A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports "$inbound_port"

# inbound
inbound=1
[ -n "$include_inbound_ports" ] || inbound=0
if [ $inbound -eq 1 ]; then
  old_ifs=$IFS; IFS=,
  for p in $exclude_inbound_ports; do
    IFS=$old_ifs; p=$(echo "$p" | tr -d ' ')
    [ -z "$p" ] || nat -A REMORA_INBOUND -p tcp --dport "$p" -j RETURN
  done
  IFS=$old_ifs
  if [ "$include_inbound_ports" = "*" ]; then
    nat -A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT
  else
    old_ifs=$IFS; IFS=,
    for p in $include_inbound_ports; do
      IFS=$old_ifs; p=$(echo "$p" | tr -d ' ')
      [ -z "$p" ] || nat -A REMORA_INBOUND -p tcp --dport "$p" -j REMORA_IN_REDIRECT
    done
    IFS=$old_ifs
  fi
  nat -A PREROUTING -p tcp -j REMORA_INBOUND
fi

# outbound
nat -A OUTPUT -p tcp -j REMORA_OUTPUT
old_ifs=$IFS; IFS=,
for p in $exclude_outbound_ports; do
  IFS=$old_ifs; p=$(echo "$p" | tr -d ' ')
  [ -z "$p" ] || nat -A REMORA_OUTPUT -p tcp --dport "$p" -j RETURN
done
IFS=$old_ifs
nat -A REMORA_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
for kind in uid gid; do
  if [ $kind = uid ]; then owner=$proxy_uid; else owner=$proxy_gid; fi
  if [ $inbound -eq 1 ]; then
    # the proxy connecting to the pod's own IP (an app calling a service that this pod
    # backs): through lo, and it must be handled as inbound traffic
    nat -A REMORA_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m owner --$kind-owner "$owner" -j REMORA_INBOUND
  fi
  # the application talking to itself over lo (127.0.0.1 or its own pod IP): not captured
  nat -A REMORA_OUTPUT -o lo -m owner ! --$kind-owner "$owner" -j RETURN
  # the proxy's own connections: never captured (no loop)
  nat -A REMORA_OUTPUT -m owner --$kind-owner "$owner" -j RETURN
done
nat -A REMORA_OUTPUT -d 127.0.0.1/32 -j RETURN
old_ifs=$IFS; IFS=,
for c in $exclude_outbound_cidrs; do
  IFS=$old_ifs; c=$(echo "$c" | tr -d ' ')
  [ -z "$c" ] || nat -A REMORA_OUTPUT -d "$c" -j RETURN
done
IFS=$old_ifs
nat -A REMORA_OUTPUT -j REMORA_REDIRECT

[ $dry_run -eq 1 ] || echo "$prog: outbound TCP -> :$outbound_port, inbound TCP -> :$inbound_port (proxy uid $proxy_uid, gid $proxy_gid)"
