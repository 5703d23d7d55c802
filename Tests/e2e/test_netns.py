"""Traffic interception in a pod-like network namespace (issue 9; SPEC §3).

Two namespaces per fixture, with unique names: `remora-pod-<tag>` (the pod: loopback
and eth0) and `remora-remote-<tag>` (everything outside the pod), joined by a veth pair
on a random 10.233.X.Y/29 (pod .1, remote .2 and .5). Nothing leaves them: no default
route, no link to the host's namespace. In the pod, docker/remora-iptables.sh installs
the nat rules; the sidecar runs as uid 1337 and the "application" (the clients and the
app server) as root, so only the application's traffic is captured.

Two groups of tests:

- plumbing (no proxy needed): the script's rules themselves, with a Python listener
  standing in for the proxy on 15001/15006 that reports SO_ORIGINAL_DST: outbound
  capture, the proxy's uid and loopback left alone, the proxy calling its own pod IP
  treated as inbound, excluded ports and CIDRs, inbound capture except excluded ports,
  idempotence, --clean, --dry-run, argument errors;
- the sidecar (`remora run` as uid 1337): (a) outbound HTTP routed by a mesh
  VirtualService, (b) unmatched HTTP passed through to the original destination, (c)
  inbound forwarded to the app with reporter="destination" metrics, (d) a server-first
  TCP exchange (a MySQL-like greeting on 3306) passing through intact, with half-close,
  (e) a port declared REDIS in a ServiceEntry proxied as plain bytes.

The whole module skips, with the reason, only when network namespaces are unavailable
(not root, or `ip netns add` fails). Teardown (pass or fail) kills every process it
started, then anything left in its own namespaces, and deletes the namespaces (the veth
pair goes with them).
"""
from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import harness
from harness import ProcManager

HERE = Path(__file__).resolve().parent
SCRIPT = harness.REPO / "docker" / "remora-iptables.sh"
PEERS = HERE / "netns_peers.py"
PROXY_UID = 1337

CHAINS = ("REMORA_OUTPUT", "REMORA_REDIRECT", "REMORA_INBOUND", "REMORA_IN_REDIRECT")


def _run(args, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)


# ---------------------------------------------------------------------------
# availability

def _netns_unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root to create network namespaces (ip netns) and install iptables rules"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"remora-probe-{secrets.token_hex(4)}"
    r = _run(["ip", "netns", "add", probe])
    if r.returncode != 0:
        return f"`ip netns add` failed (network namespaces unavailable here): {r.stderr.strip()}"
    try:
        r = _run(["ip", "netns", "exec", probe, "ip", "link", "set", "lo", "up"])
        if r.returncode != 0:
            return f"`ip netns exec` failed (network namespaces unavailable here): {r.stderr.strip()}"
    finally:
        _run(["ip", "netns", "del", probe])
    return None


@pytest.fixture(scope="module", autouse=True)
def netns_available():
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)
    # namespaces work: from here on a missing tool is a broken setup, not a skip
    for tool, hint in (("iptables", "apt-get install iptables (scripts/install-deps.sh does)"),
                       ("setpriv", "util-linux"), ("ss", "iproute2"), ("curl", "apt-get install curl")):
        if shutil.which(tool) is None:
            pytest.fail(f"`{tool}` is not installed: {hint}")


def _python_for(uid: int) -> str:
    """An interpreter that uid can run (pyenv's under /root is not readable by 1337)."""
    for cand in (sys.executable, "/usr/bin/python3", shutil.which("python3") or ""):
        if cand and _run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                          cand, "-c", "import json, socket, struct, threading"]).returncode == 0:
            return cand
    pytest.fail(f"no python3 interpreter runnable by uid {uid} (tried {sys.executable}, /usr/bin/python3)")


def _as_uid(uid: int | None) -> list[str]:
    if uid is None:
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


# ---------------------------------------------------------------------------
# the pod and its outside

class PodNet:
    """A pod namespace and a remote namespace joined by a veth pair (see module doc)."""

    def __init__(self, logdir: Path):
        tag = secrets.token_hex(3)
        self.pod = f"remora-pod-{tag}"
        self.remote = f"remora-remote-{tag}"
        x, y = random.randrange(256), random.randrange(32) * 8
        self.pod_ip = f"10.233.{x}.{y + 1}"
        self.remote_ip = f"10.233.{x}.{y + 2}"
        self.extra_ip = f"10.233.{x}.{y + 5}"  # a second remote address (excluded CIDR)
        self.pm = ProcManager(Path(logdir) / "logs")
        # files that uid 1337 must read (peers, config, maybe the binary): a 0755 dir
        self.share = Path(tempfile.mkdtemp(prefix=f"remora-netns-{tag}-"))
        self.share.chmod(0o755)
        self.peers = self.share / "netns_peers.py"
        shutil.copyfile(PEERS, self.peers)
        self.peers.chmod(0o644)
        self.py_root = sys.executable
        self.py_proxy = _python_for(PROXY_UID)
        self._created: list[str] = []

    # -- lifecycle
    def create(self) -> None:
        for ns in (self.pod, self.remote):
            self._ip("netns", "add", ns)
            self._created.append(ns)
        self._ip("link", "add", "eth0", "netns", self.pod, "type", "veth",
                 "peer", "name", "eth0", "netns", self.remote)
        for ns, addrs in ((self.pod, [self.pod_ip]), (self.remote, [self.remote_ip, self.extra_ip])):
            self._ip("-n", ns, "link", "set", "lo", "up")
            for a in addrs:
                self._ip("-n", ns, "addr", "add", f"{a}/29", "dev", "eth0")
            self._ip("-n", ns, "link", "set", "eth0", "up")

    def destroy(self) -> None:
        self.pm.cleanup()
        for ns in self._created:
            # anything still running in our own namespaces was started by this fixture
            r = _run(["ip", "netns", "pids", ns])
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        for ns in self._created:
            _run(["ip", "netns", "del", ns])
        self._created.clear()
        shutil.rmtree(self.share, ignore_errors=True)

    def _ip(self, *args) -> None:
        r = _run(["ip", *args])
        if r.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)} failed: {r.stderr.strip()}")

    # -- running things in a namespace
    def cmd(self, ns: str, args: list, uid: int | None = None) -> list[str]:
        return ["ip", "netns", "exec", ns, *_as_uid(uid), *map(str, args)]

    def run(self, ns: str, args: list, uid: int | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
        return _run(self.cmd(ns, args, uid), timeout=timeout)

    def peers_cmd(self, uid: int | None, *args) -> list:
        py = self.py_proxy if uid == PROXY_UID else self.py_root
        return [py, self.peers, *args]

    def client(self, ns: str, *args, uid: int | None = None, timeout: float = 90) -> dict:
        """Run a netns_peers client; its JSON result (with "error" on failure)."""
        r = self.run(ns, self.peers_cmd(uid, *args), uid=uid, timeout=timeout)
        lines = r.stdout.strip().splitlines()
        try:
            res = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            res = {"error": f"bad output: {r.stdout!r}"}
        if r.returncode != 0 and "error" not in res:
            res["error"] = f"exit {r.returncode}: {r.stderr.strip()}"
        if r.stderr.strip():
            res.setdefault("stderr", r.stderr.strip()[-2000:])
        return res

    def line(self, ns: str, host: str, port: int, uid: int | None = None) -> str:
        res = self.client(ns, "line-client", "--host", host, "--port", port, uid=uid, timeout=30)
        return res.get("line") or f"<no line: {res.get('error')}>"

    def start_peer(self, ns: str, name: str, *args, uid: int | None = None) -> harness.Proc:
        p = self.pm.start(name, self.cmd(ns, self.peers_cmd(uid, *args), uid), stdout_pipe=True)
        line = p.read_line(20)
        if not line or not line.startswith("READY"):
            raise RuntimeError(f"{name} did not start: {line!r}\n{p.describe()}")
        return p

    def wait_port(self, ns: str, host: str, port: int, proc: harness.Proc, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.run(ns, [self.py_root, self.peers, "wait-port", "--host", host, "--port", port,
                              "--timeout", "1"])
            if r.returncode == 0:
                return
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited before {host}:{port} accepted (in {ns})\n"
                                   + proc.describe())
        raise RuntimeError(f"nothing accepted on {host}:{port} in {ns} within {timeout}s\n" + proc.describe())

    # -- iptables
    def install_rules(self, *args) -> subprocess.CompletedProcess:
        r = self.run(self.pod, ["sh", SCRIPT, *args])
        if r.returncode != 0:
            raise RuntimeError(f"remora-iptables.sh {' '.join(map(str, args))} failed "
                               f"(exit {r.returncode}): {r.stderr.strip()}")
        return r

    def nat_rules(self) -> str:
        return self.run(self.pod, ["iptables", "-t", "nat", "-S"]).stdout

    def nat_counters(self) -> str:
        return self.run(self.pod, ["iptables", "-t", "nat", "-L", "-v", "-n", "-x"]).stdout

    def chain_packets(self, chain: str) -> int:
        """Packets that went through the rules of a chain (sum of its rule counters)."""
        out = self.run(self.pod, ["iptables", "-t", "nat", "-L", chain, "-v", "-n", "-x"]).stdout
        total = 0
        for ln in out.splitlines()[2:]:
            parts = ln.split()
            if parts and parts[0].isdigit():
                total += int(parts[0])
        return total


def _build(logdir: Path) -> PodNet:
    net = PodNet(logdir)
    try:
        net.create()
    except BaseException:
        net.destroy()
        raise
    return net


# ---------------------------------------------------------------------------
# plumbing: the script's rules with a stand-in for the proxy

@pytest.fixture(scope="module")
def plumbing(tmp_path_factory):
    net = _build(tmp_path_factory.mktemp("netns-plumbing"))
    try:
        net.install_rules("--exclude-outbound-ports", "2222",
                          "--exclude-outbound-cidrs", f"{net.extra_ip}/32")
        # the stand-in proxy: uid 1337, reports SO_ORIGINAL_DST
        net.start_peer(net.pod, "capture", "capture", "--port", "15001", "--port", "15006",
                       uid=PROXY_UID)
        net.start_peer(net.pod, "pod-local", "tcp-server", "--port", "7000", "--greeting", "LOCAL")
        net.start_peer(net.pod, "pod-health", "tcp-server", "--port", "15021", "--greeting", "HEALTH")
        net.start_peer(net.remote, "remote-3306", "tcp-server", "--port", "3306", "--greeting", "REMOTE")
        net.start_peer(net.remote, "remote-2222", "tcp-server", "--port", "2222", "--greeting", "REMOTE")
        net.start_peer(net.remote, "remote-8080", "tcp-server", "--port", "8080", "--greeting", "REMOTE")
        yield net
    finally:
        net.destroy()


def _captured(line: str) -> dict:
    m = re.fullmatch(r"CAPTURED listener=(\d+) orig=(\S+) peer=(\S+) uid=(\d+)", line)
    assert m, f"not captured by the stand-in proxy: {line!r}"
    return {"listener": int(m.group(1)), "orig": m.group(2), "peer": m.group(3), "uid": int(m.group(4))}


def test_script_dry_run_prints_istio_layout():
    r = _run(["sh", SCRIPT, "--dry-run", "--exclude-outbound-ports", "3306,5432",
              "--exclude-outbound-cidrs", "169.254.169.254/32"])
    assert r.returncode == 0, r.stderr
    rules = [ln for ln in r.stdout.splitlines() if ln and not ln.startswith("#")]
    expected = [
        "iptables -t nat -N REMORA_OUTPUT",
        "iptables -t nat -N REMORA_REDIRECT",
        "iptables -t nat -N REMORA_INBOUND",
        "iptables -t nat -N REMORA_IN_REDIRECT",
        "iptables -t nat -A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "iptables -t nat -A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "iptables -t nat -A REMORA_INBOUND -p tcp --dport 15021 -j RETURN",
        "iptables -t nat -A REMORA_INBOUND -p tcp --dport 15090 -j RETURN",
        "iptables -t nat -A REMORA_INBOUND -p tcp --dport 15000 -j RETURN",
        "iptables -t nat -A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT",
        "iptables -t nat -A PREROUTING -p tcp -j REMORA_INBOUND",
        "iptables -t nat -A OUTPUT -p tcp -j REMORA_OUTPUT",
        "iptables -t nat -A REMORA_OUTPUT -p tcp --dport 3306 -j RETURN",
        "iptables -t nat -A REMORA_OUTPUT -p tcp --dport 5432 -j RETURN",
        "iptables -t nat -A REMORA_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN",
        "iptables -t nat -A REMORA_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m owner --uid-owner 1337 -j REMORA_INBOUND",
        "iptables -t nat -A REMORA_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN",
        "iptables -t nat -A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "iptables -t nat -A REMORA_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m owner --gid-owner 1337 -j REMORA_INBOUND",
        "iptables -t nat -A REMORA_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN",
        "iptables -t nat -A REMORA_OUTPUT -m owner --gid-owner 1337 -j RETURN",
        "iptables -t nat -A REMORA_OUTPUT -d 127.0.0.1/32 -j RETURN",
        "iptables -t nat -A REMORA_OUTPUT -d 169.254.169.254/32 -j RETURN",
        "iptables -t nat -A REMORA_OUTPUT -j REMORA_REDIRECT",
    ]
    assert rules == expected, r.stdout


def test_script_rejects_bad_arguments():
    for args, needle in ((["--outbound-port", "0"], "--outbound-port"),
                         (["--exclude-inbound-ports", "15021,x"], "--exclude-inbound-ports"),
                         (["--exclude-outbound-cidrs", "10.0.0/8"], "--exclude-outbound-cidrs"),
                         (["--proxy-uid"], "--proxy-uid"),
                         (["--no-such-option"], "--no-such-option")):
        r = _run(["sh", SCRIPT, "--dry-run", *args])
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert needle in r.stderr and r.stdout == "", (args, r.stderr)


def test_script_idempotent_and_clean(tmp_path):
    net = _build(tmp_path)
    try:
        net.install_rules("--exclude-outbound-ports", "22")
        first = net.nat_rules()
        for c in CHAINS:
            assert f"-N {c}" in first, first
        assert "-A OUTPUT -p tcp -j REMORA_OUTPUT" in first, first
        assert "-A PREROUTING -p tcp -j REMORA_INBOUND" in first, first
        net.install_rules("--exclude-outbound-ports", "22")
        assert net.nat_rules() == first, "re-running the script changed the rules"
        # re-running with other options replaces the rules instead of adding to them
        net.install_rules("--exclude-outbound-ports", "2022", "--outbound-port", "15101")
        again = net.nat_rules()
        assert "--dport 22 " not in again and "--dport 2022 " in again, again
        assert again.count("-j REMORA_OUTPUT") == 1 and "--to-ports 15101" in again, again
        r = net.run(net.pod, ["sh", SCRIPT, "--clean"])
        assert r.returncode == 0, r.stderr
        cleaned = net.nat_rules()
        assert "REMORA" not in cleaned, cleaned
        r = net.run(net.pod, ["sh", SCRIPT, "--clean"])  # nothing to remove: still fine
        assert r.returncode == 0, r.stderr
        # not root: a clear error, exit 1
        r = net.run(net.pod, ["setpriv", "--reuid=1337", "--regid=1337", "--clear-groups",
                              "--inh-caps=-all", "--bounding-set=-all", "sh", SCRIPT])
        assert r.returncode == 1 and "CAP_NET_ADMIN" in r.stderr, (r.returncode, r.stderr)
    finally:
        net.destroy()


def test_capture_outbound_to_15001_with_original_dst(plumbing):
    net = plumbing
    before = net.chain_packets("REMORA_REDIRECT")
    c = _captured(net.line(net.pod, net.remote_ip, 3306))
    assert c["listener"] == 15001 and c["orig"] == f"{net.remote_ip}:3306", c
    assert c["peer"].startswith(net.pod_ip + ":"), c
    assert net.chain_packets("REMORA_REDIRECT") > before, net.nat_counters()
    c = _captured(net.line(net.pod, net.remote_ip, 8080))
    assert c["listener"] == 15001 and c["orig"] == f"{net.remote_ip}:8080", c


def test_capture_skips_the_proxy_uid(plumbing):
    net = plumbing
    assert net.line(net.pod, net.remote_ip, 3306, uid=PROXY_UID) == "REMOTE"


def test_capture_skips_loopback_and_the_apps_own_pod_ip(plumbing):
    net = plumbing
    assert net.line(net.pod, "127.0.0.1", 7000) == "LOCAL"
    assert net.line(net.pod, net.pod_ip, 7000) == "LOCAL"
    assert net.line(net.pod, "127.0.0.1", 7000, uid=PROXY_UID) == "LOCAL"


def test_capture_proxy_calling_its_own_pod_ip_is_inbound(plumbing):
    """Istio's rule: the proxy's connection to the pod's own IP (over lo) goes to the
    inbound listener, so a pod calling a service it backs is seen by both sides."""
    net = plumbing
    c = _captured(net.line(net.pod, net.pod_ip, 7000, uid=PROXY_UID))
    assert c["listener"] == 15006 and c["orig"] == f"{net.pod_ip}:7000", c
    # excluded inbound ports stay excluded on that path too
    assert net.line(net.pod, net.pod_ip, 15021, uid=PROXY_UID) == "HEALTH"


def test_capture_skips_excluded_outbound_ports_and_cidrs(plumbing):
    net = plumbing
    assert net.line(net.pod, net.remote_ip, 2222) == "REMOTE"          # --exclude-outbound-ports
    assert net.line(net.pod, net.extra_ip, 3306) == "REMOTE"           # --exclude-outbound-cidrs
    assert net.line(net.pod, net.extra_ip, 8080) == "REMOTE"           # (any port)
    c = _captured(net.line(net.pod, net.remote_ip, 3306))
    assert c["orig"] == f"{net.remote_ip}:3306", c                     # the other remote address: captured


def test_capture_inbound_to_15006_except_excluded_ports(plumbing):
    net = plumbing
    before = net.chain_packets("REMORA_IN_REDIRECT")
    c = _captured(net.line(net.remote, net.pod_ip, 8080))
    assert c["listener"] == 15006 and c["orig"] == f"{net.pod_ip}:8080", c
    assert c["peer"].startswith(net.remote_ip + ":"), c
    assert net.chain_packets("REMORA_IN_REDIRECT") > before, net.nat_counters()
    assert net.line(net.remote, net.pod_ip, 15021) == "HEALTH"         # --exclude-inbound-ports default


# ---------------------------------------------------------------------------
# the sidecar

MYSQL_GREETING = "5.7.42-remora-test mysql_native_password greeting"
OTHER_GREETING = "220 server-first on an undeclared port"


def _sidecar_config(net: PodNet) -> list[dict]:
    r = net.remote_ip
    proxy = {
        "apiVersion": "remora.dev/v1alpha1", "kind": "Proxy", "metadata": {"name": "sidecar"},
        "spec": {
            "workers": 2,
            "admin": {"address": "127.0.0.1", "port": 15000},
            "health": {"address": "0.0.0.0", "port": 15021},
            "metrics": {"address": "0.0.0.0", "port": 15090},
            "meshListeners": {"outbound": {"address": "0.0.0.0", "port": 15001},
                              "inbound": {"address": "0.0.0.0", "port": 15006}},
            "accessLog": {"path": "stdout"},
        },
    }

    def http_se(name: str, port: int) -> dict:
        return {
            "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"hosts": [name], "ports": [{"number": 8080, "name": "http", "protocol": "HTTP"}],
                     "resolution": "STATIC", "endpoints": [{"address": r, "ports": {"http": port}}]},
        }

    vs = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "adservice", "namespace": "default"},
        "spec": {"hosts": ["adservice"], "http": [
            {"name": "alice-to-branch", "match": [{"headers": {"userid": {"exact": "alice"}}}],
             "route": [{"destination": {"host": "adservice-myfeature", "port": {"number": 8080}}}]},
            {"name": "mainline",
             "route": [{"destination": {"host": "adservice", "port": {"number": 8080}}}]},
        ]},
    }
    redis = {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "redis", "namespace": "default"},
        "spec": {"hosts": ["redis.remote"], "addresses": [f"{r}/32"],
                 "ports": [{"number": 6379, "name": "redis", "protocol": "REDIS"}],
                 "resolution": "STATIC", "endpoints": [{"address": r}]},
    }
    # a plain TCP port whose DestinationRule sets Envoy's tcp_proxy idle timeout
    idle_tcp = {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "idle-tcp", "namespace": "default"},
        "spec": {"hosts": ["idle.remote"], "addresses": [f"{r}/32"],
                 "ports": [{"number": 6380, "name": "tcp", "protocol": "TCP"}],
                 "resolution": "STATIC", "endpoints": [{"address": r}]},
    }
    idle_dr = {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "idle-tcp", "namespace": "default"},
        "spec": {"host": "idle.remote", "trafficPolicy": {"connectionPool": {"tcp": {"idleTimeout": "1s"}}}},
    }
    return [proxy, http_se("adservice", 8081), http_se("adservice-myfeature", 8082), vs, redis, idle_tcp, idle_dr]


def _binary_for_proxy_uid(bin_path: Path, share: Path) -> Path:
    """The remora binary, copied next to the config when uid 1337 cannot run it in place."""
    r = _run(["setpriv", f"--reuid={PROXY_UID}", f"--regid={PROXY_UID}", "--clear-groups",
              bin_path, "--help"])
    if r.returncode == 0:
        return bin_path
    copy = share / "remora"
    shutil.copyfile(bin_path, copy)
    copy.chmod(0o755)
    return copy


class Sidecar:
    def __init__(self, net: PodNet, proc: harness.Proc):
        self.net, self.proc = net, proc

    def metrics(self) -> str:
        r = self.net.run(self.net.pod, ["curl", "-sS", "--max-time", "10",
                                        "http://127.0.0.1:15090/stats/prometheus"])
        return r.stdout

    def logs(self) -> str:
        return self.proc.describe(80)


@pytest.fixture(scope="module")
def sidecar(remora_bin, tmp_path_factory):
    net = _build(tmp_path_factory.mktemp("netns-sidecar"))
    try:
        rip = net.remote_ip
        # outside the pod: echo servers, a MySQL-like server-first server, a redis-like one
        for name, port in (("adservice", 8081), ("adservice-myfeature", 8082),
                           ("decoy-original-dst", 8080), ("direct", 9090)):
            p = net.pm.start(f"echo-{name}", net.cmd(net.remote, [remora_bin, "echo", "--listen",
                                                                  f"{rip}:{port}", "--name", name]))
            net.wait_port(net.remote, rip, port, p)
        net.start_peer(net.remote, "mysql-like", "tcp-server", "--port", "3306", "--greeting", MYSQL_GREETING)
        net.start_peer(net.remote, "server-first-5999", "tcp-server", "--port", "5999",
                       "--greeting", OTHER_GREETING)
        net.start_peer(net.remote, "redis-like", "tcp-server", "--port", "6379")
        net.start_peer(net.remote, "idle-tcp", "tcp-server", "--port", "6380")
        # inside the pod: the application (root) on 8080, the rules, the sidecar (uid 1337)
        app = net.pm.start("echo-app", net.cmd(net.pod, [remora_bin, "echo", "--listen", "0.0.0.0:8080",
                                                         "--name", "app"]))
        net.wait_port(net.pod, "127.0.0.1", 8080, app)
        net.install_rules()
        cfg = net.share / "sidecar.yaml"
        cfg.write_text(harness.documents_yaml(_sidecar_config(net)))
        cfg.chmod(0o644)
        binary = _binary_for_proxy_uid(remora_bin, net.share)
        proxy = net.pm.start("remora-sidecar", net.cmd(net.pod, [binary, "run", "-c", cfg], uid=PROXY_UID))
        net.wait_port(net.pod, "127.0.0.1", 15001, proxy)
        net.wait_port(net.pod, "127.0.0.1", 15021, proxy)
        yield Sidecar(net, proxy)
    finally:
        net.destroy()


def _curl_in(net: PodNet, ns: str, url: str, *args) -> tuple[int, dict | str]:
    """curl inside a namespace: (status, echo JSON or raw body)."""
    r = net.run(ns, ["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", *args, url], timeout=30)
    body, _, code = r.stdout.rpartition("\n")
    try:
        status = int(code)
    except ValueError:
        status = 0
    if status == 0:
        return 0, f"curl failed (exit {r.returncode}): {r.stderr.strip()} {r.stdout!r}"
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


def _why(sc: Sidecar, extra: str = "") -> str:
    return (f"{extra}\n--- iptables (pod)\n{sc.net.nat_counters()}\n--- sidecar\n{sc.logs()}")


def test_a_outbound_http_routed_by_mesh_virtual_service(sidecar):
    """The app calls adservice at the remote IP:8080 (where only a decoy listens); the
    sidecar routes by authority: userid alice -> adservice-myfeature, else adservice."""
    net, url = sidecar.net, f"http://{sidecar.net.remote_ip}:8080/hello"
    for headers, want in (([], "adservice"), (["-H", "userid: alice"], "adservice-myfeature"),
                          (["-H", "userid: bob"], "adservice")):
        status, doc = _curl_in(net, net.pod, url, "-H", "Host: adservice", *headers)
        assert status == 200 and isinstance(doc, dict), _why(sidecar, f"{headers}: {status} {doc}")
        assert doc.get("name") == want, _why(sidecar, f"{headers}: reached {doc.get('name')!r}, want {want!r}"
                                             " (decoy-original-dst = not routed)")
        h = harness.echo_headers(doc)
        assert h.get("x-request-id"), _why(sidecar, f"no x-request-id: the proxy did not handle it: {h}")


def test_b_outbound_http_passthrough_to_original_destination(sidecar):
    """No VirtualService for the authority: the request reaches the original
    destination (remote IP:9090), through the proxy (which adds x-request-id)."""
    net = sidecar.net
    status, doc = _curl_in(net, net.pod, f"http://{net.remote_ip}:9090/pass", "-H", "Host: unknown.example")
    assert status == 200 and isinstance(doc, dict), _why(sidecar, f"{status} {doc}")
    assert doc.get("name") == "direct", _why(sidecar, f"reached {doc.get('name')!r}")
    h = harness.echo_headers(doc)
    assert h.get("x-request-id"), _why(sidecar, f"no x-request-id: not through the proxy? {h}")


def test_c_inbound_forwarded_to_the_app_with_destination_metrics(sidecar):
    net = sidecar.net
    before = net.chain_packets("REMORA_IN_REDIRECT")
    status, doc = _curl_in(net, net.remote, f"http://{net.pod_ip}:8080/inbound", "-H", "Host: app.default")
    assert net.chain_packets("REMORA_IN_REDIRECT") > before, _why(sidecar, "inbound not redirected")
    assert status == 200 and isinstance(doc, dict), _why(sidecar, f"{status} {doc}")
    assert doc.get("name") == "app", _why(sidecar, f"reached {doc.get('name')!r}")
    h = harness.echo_headers(doc)
    assert h.get("x-request-id"), _why(sidecar, f"no x-request-id: not through the proxy? {h}")
    deadline = time.monotonic() + 5
    metrics = ""
    while time.monotonic() < deadline:
        metrics = sidecar.metrics()
        if re.search(r'^istio_requests_total\{[^}]*reporter="destination"', metrics, re.M):
            break
        time.sleep(0.2)
    assert re.search(r'^istio_requests_total\{[^}]*reporter="destination"', metrics, re.M), \
        _why(sidecar, "no istio_requests_total{reporter=\"destination\"}:\n"
             + "\n".join(ln for ln in metrics.splitlines() if ln.startswith("istio_requests_total")))


def test_c_inbound_excluded_port_reaches_the_proxy_itself(sidecar):
    """15021 is excluded from capture: the remote side gets the proxy's readiness."""
    net = sidecar.net
    r = net.run(net.remote, ["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                             f"http://{net.pod_ip}:15021/healthz/ready"])
    assert r.stdout == "200", _why(sidecar, f"{r.stdout} {r.stderr}")


def _proxy_owns_a_socket(ss_lines: list[str]) -> bool:
    return any('"remora"' in ln for ln in ss_lines)


def test_d_server_first_tcp_passthrough_intact(sidecar):
    """A MySQL-like server speaks first on 3306: the app gets the greeting within 1 s
    without sending anything, then its bytes echo back, and after its half-close the
    server's last line and EOF still arrive; the proxy holds the upstream socket."""
    net = sidecar.net
    res = sidecar.net.client(net.pod, "server-first-client", "--host", net.remote_ip, "--port", "3306",
                             "--greeting-timeout", "1", "--ss")
    assert "error" not in res, _why(sidecar, f"{res}")
    assert res["greeting"] == MYSQL_GREETING and res["greeting_seconds"] < 1.0, res
    assert res["echo_ok"] and res["bye"] == res["expected_bye"] and res["eof"], res
    assert _proxy_owns_a_socket(res["ss"]), _why(sidecar, "the upstream connection is not the proxy's "
                                                 f"(not captured?): {res['ss']}")


def test_d_server_first_on_an_undeclared_port_falls_back_to_tcp(sidecar):
    """On a port neither declared nor known as server-first, protocol detection waits a
    short time for client bytes, then passes TCP through: the greeting still arrives."""
    net = sidecar.net
    res = sidecar.net.client(net.pod, "server-first-client", "--host", net.remote_ip, "--port", "5999",
                             "--greeting-timeout", "5", "--ss")
    assert "error" not in res, _why(sidecar, f"{res}")
    assert res["greeting"] == OTHER_GREETING, res
    assert res["echo_ok"] and res["bye"] == res["expected_bye"] and res["eof"], res
    assert _proxy_owns_a_socket(res["ss"]), _why(sidecar, f"not through the proxy: {res['ss']}")


def test_e_declared_tcp_port_proxied_as_plain_bytes(sidecar):
    """6379 is declared REDIS by a ServiceEntry: plain TCP, so 1 MiB of random bytes
    behind an HTTP-looking request head comes back byte for byte (no HTTP parsing)."""
    net = sidecar.net
    res = sidecar.net.client(net.pod, "stream-client", "--host", net.remote_ip, "--port", "6379",
                             "--bytes", str(1 << 20), "--http-prefix", "--ss", timeout=120)
    assert "error" not in res, _why(sidecar, f"{res}")
    assert res["recv_sha256"] == res["sent_sha256"], res
    assert res["bye"] == res["expected_bye"] and res["eof"], res
    assert _proxy_owns_a_socket(res["ss"]), _why(sidecar, f"not through the proxy: {res['ss']}")
    metrics = sidecar.metrics()
    assert re.search(r"^istio_tcp_connections_opened_total[{ ]", metrics, re.M), \
        _why(sidecar, "no istio_tcp_connections_opened_total:\n"
             + "\n".join(ln for ln in metrics.splitlines() if ln.startswith("istio_tcp")))


def test_e_tcp_idle_timeout_from_destination_rule(sidecar):
    """DestinationRule connectionPool.tcp.idleTimeout 1s on a declared TCP port: a
    connection echoing a line every 0.2 s for 2.5 s stays up (activity resets the timer),
    then, quiet, is closed by the proxy about 1 s later; the default (1 h) is not hit by
    the 6379 stream test."""
    net = sidecar.net
    res = net.client(net.pod, "idle-client", "--host", net.remote_ip, "--port", "6380",
                     "--active", "2.5", "--wait", "5", timeout=30)
    assert "error" not in res, _why(sidecar, f"{res}")
    assert res["echoed"] >= 10, res
    assert res["closed"] and 0.8 <= res["quiet_seconds"] <= 2.5, _why(
        sidecar, f"want the proxy to close the quiet connection ~1 s after the last byte: {res}")
