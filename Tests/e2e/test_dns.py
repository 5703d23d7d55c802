"""Asynchronous DNS (c-ares) through the real binary, against a real name server: dnsmasq
(Debian's dnsmasq-base) on a free port, answering from a hosts file with TTL 1 s, pointed
at by `Proxy.spec.dns.servers`.

- a `resolution: DNS` ServiceEntry name with two A records: both endpoints get requests;
- the TTL is respected: a changed answer moves traffic without a configuration reload;
- the name server gone: the last good answer keeps serving, `/clusters` still lists it;
- a destination with no ServiceEntry (the DNS fallback) resolves through the configured
  server, and a configuration change that brings a new name is installed once it resolved;
- a name with A and AAAA records uses the A records only (V4_PREFERRED);
- a name server that never answers delays neither start-up nor a PUT beyond the warm
  timeout, and never the requests of other routes.

Loopback is all of 127.0.0.0/8 on Linux, so `remora echo` on 127.0.0.1:P and 127.0.0.2:P
are two endpoints of one name on one port.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import threading
import time
import urllib.request

import pytest

import harness
from harness import free_port, http_request, wait_for_port

DNSMASQ = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
pytestmark = pytest.mark.skipif(DNSMASQ is None, reason="dnsmasq not installed (Debian: dnsmasq-base; scripts/install-deps.sh)")

WARM_TIMEOUT_S = 5.0   # DNSRefresh.warmTimeoutMs


# ---------------------------------------------------------------------------
# a DNS client, enough to see that the name server answers

def dns_query(port: int, name: str, qtype: int = 1, timeout: float = 0.3) -> list[str] | None:
    """A records (or AAAA with qtype 28) of `name` from 127.0.0.1:port; None without a reply."""
    qid = os.getpid() & 0xFFFF
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(q, ("127.0.0.1", port))
            data, _ = s.recvfrom(4096)
        except OSError:
            return None
    if len(data) < 12 or struct.unpack(">H", data[:2])[0] != qid:
        return None
    ancount = struct.unpack(">H", data[6:8])[0]
    i = len(q)
    out = []
    for _ in range(ancount):
        if data[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while data[i]:
                i += data[i] + 1
            i += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[i:i + 10])
        i += 10
        rdata = data[i:i + rdlen]
        i += rdlen
        if rtype == 1:
            out.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == 28:
            out.append(socket.inet_ntop(socket.AF_INET6, rdata))
    return out


class Dnsmasq:
    """dnsmasq on 127.0.0.1:port answering from its own hosts file (TTL 1 s); NXDOMAIN for
    every other *.test name, nothing forwarded anywhere."""

    def __init__(self, env, records: dict[str, list[str]]):
        self.env = env
        self.port = free_port()
        self.hosts = env.dir / f"dnsmasq-{self.port}.hosts"
        self.write(records)
        args = [DNSMASQ, "-k", f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
                "--no-resolv", "--no-hosts", f"--addn-hosts={self.hosts}", "--local-ttl=1", "--local=/test/",
                f"--pid-file={env.dir / f'dnsmasq-{self.port}.pid'}", "--conf-file=/dev/null",
                "--log-facility=-", "--log-queries"]
        if os.geteuid() == 0:
            args.append("--user=root")   # keep reading the hosts file (pytest's tmp dir is 0700)
        self.proc = env.pm.start("dnsmasq", args)
        self.wait_answers(next(iter(records)), timeout=10)

    def write(self, records: dict[str, list[str]]) -> None:
        self.hosts.write_text("".join(f"{ip} {name}\n" for name, ips in records.items() for ip in ips))

    def update(self, records: dict[str, list[str]]) -> None:
        """New records; SIGHUP makes dnsmasq re-read the hosts file."""
        self.write(records)
        self.proc.signal(signal.SIGHUP)
        want = sorted(records[next(iter(records))])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if sorted(dns_query(self.port, next(iter(records))) or []) == want:
                return
            time.sleep(0.05)
        raise AssertionError(f"dnsmasq did not pick up {records}\n{self.proc.describe()}")

    def wait_answers(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dns_query(self.port, name):
                return
            if not self.proc.alive():
                break
            time.sleep(0.05)
        raise RuntimeError(f"dnsmasq does not answer for {name}\n{self.proc.describe()}")

    def kill(self) -> None:
        self.proc.kill()


class SilentDNS:
    """A UDP socket that reads every query and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.stopped = False
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                self.sock.recvfrom(4096)
                self.queries += 1
            except socket.timeout:
                continue
            except OSError:
                return

    def stop(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


# ---------------------------------------------------------------------------
# configuration

def echo_on(env, ip: str, port: int, name: str):
    p = env.pm.start(f"echo-{name}", [env.bin, "echo", "--listen", f"{ip}:{port}", "--name", name])
    wait_for_port(port, 20, p, host=ip)
    return p


def dns_service_entry(name: str, host: str, target_port: int) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"hosts": [host], "location": "MESH_EXTERNAL", "resolution": "DNS",
                     "ports": [{"number": 80, "name": "http", "protocol": "HTTP", "targetPort": target_port}]}}


def round_robin(name: str, host: str) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"host": host, "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}}


def route(name: str, host: str, dest: str, port: int = 80) -> dict:
    return harness.virtual_service(name, [host], dest, port_number=port)


def start_proxy(env, resources: list[dict], servers: list[str], name: str = "remora", ports: dict | None = None,
                wait: bool = True):
    ports = ports or {k: free_port() for k in ("listen", "admin", "health", "metrics")}
    extra = {"dns": {"servers": servers}}
    docs = [harness.proxy_resource(ports["listen"], ports["admin"], ports["health"], ports["metrics"], extra=extra)]
    path = env.write(docs + resources, f"{name}-{ports['listen']}.yaml")
    if not wait:
        args = [env.bin, "run", "-c", path]
        return env.pm.start(name, args), ports, docs
    return env.run_proxy([path], ports, name), ports, docs


def admin(ports: dict, method: str, path: str, body: str | None = None, timeout: float = 30):
    req = urllib.request.Request(f"http://127.0.0.1:{ports['admin']}{path}", method=method,
                                 data=body.encode() if body is not None else None,
                                 headers={"Content-Type": "application/yaml"} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def dns_clusters(ports: dict, host: str) -> list[dict]:
    st, body = admin(ports, "GET", "/clusters")
    assert st == 200, body
    return [c for c in json.loads(body)["clusters"] if c["host"] == host]


def names_seen(port: int, host: str, n: int) -> list[str | None]:
    out = []
    for _ in range(n):
        r = http_request(port, "GET", "/", host=host)
        out.append(r.header("x-echo-name") if r.status == 200 else f"status {r.status}")
    return out


def config_version(ports: dict) -> int:
    st, body = admin(ports, "GET", "/config")
    assert st == 200, body
    return json.loads(body)["version"]


# ---------------------------------------------------------------------------
# tests

HOST_A = "svc-a.remora.test"


def two_endpoints_of_one_name(env):
    """Echoes a1 on 127.0.0.1:P and a2 on 127.0.0.2:P, dnsmasq giving both for HOST_A, and
    a proxy routing HOST_A round robin to a `resolution: DNS` ServiceEntry of it."""
    port = free_port()
    echo_on(env, "127.0.0.1", port, "a1")
    echo_on(env, "127.0.0.2", port, "a2")
    dns = Dnsmasq(env, {HOST_A: ["127.0.0.1", "127.0.0.2"]})
    px, ports, _ = start_proxy(env, [dns_service_entry("svc-a", HOST_A, port), round_robin("svc-a", HOST_A),
                                     route("a", HOST_A, HOST_A)], [f"127.0.0.1:{dns.port}"])
    return px, ports, dns, port


def test_every_address_of_a_dns_service_entry_gets_requests(env):
    """(a) Two A records → two endpoints, both used; /clusters shows the name and both."""
    px, ports, _, port = two_endpoints_of_one_name(env)
    seen = names_seen(px.port, HOST_A, 10)
    assert set(seen) == {"a1", "a2"}, seen
    [c] = dns_clusters(ports, HOST_A)
    assert c["dns"]["name"] == HOST_A and sorted(c["dns"]["addresses"]) == ["127.0.0.1", "127.0.0.2"], c
    assert sorted(e["address"] for e in c["endpoints"]) == [f"127.0.0.1:{port}", f"127.0.0.2:{port}"], c
    assert "lastError" not in c["dns"] and c["dns"]["state"] == "RESOLVED", c
    # The TTL is 1 s: the next lookup is due within about a second.
    assert 0 <= c["dns"]["nextRefreshMs"] <= 1_100, c


def test_every_endpoint_name_of_a_dns_service_entry_is_resolved(env):
    """A `resolution: DNS` ServiceEntry with two endpoints, each a name: both names are
    resolved and both become endpoints (Envoy STRICT_DNS with two hosts); /clusters lists
    both names."""
    port = free_port()
    echo_on(env, "127.0.0.1", port, "b1")
    echo_on(env, "127.0.0.2", port, "b2")
    names = {"b1.remora.test": ["127.0.0.1"], "b2.remora.test": ["127.0.0.2"]}
    dns = Dnsmasq(env, names)
    se = dns_service_entry("svc-b", "svc-b.remora.test", port)
    se["spec"]["endpoints"] = [{"address": n} for n in names]
    px, ports, _ = start_proxy(env, [se, round_robin("svc-b", "svc-b.remora.test"),
                                     route("b", "svc-b.remora.test", "svc-b.remora.test")], [f"127.0.0.1:{dns.port}"])
    seen = names_seen(px.port, "svc-b.remora.test", 10)
    assert set(seen) == {"b1", "b2"}, seen
    [c] = dns_clusters(ports, "svc-b.remora.test")
    assert sorted((d["name"], tuple(d["addresses"])) for d in c["dns"]) == [
        ("b1.remora.test", ("127.0.0.1",)), ("b2.remora.test", ("127.0.0.2",))], c


def test_ttl_is_respected_without_a_reload(env):
    """(b) The record changes (TTL 1 s): traffic moves to the new address within seconds,
    the configuration version stays 1."""
    port = free_port()
    echo_on(env, "127.0.0.1", port, "old")
    echo_on(env, "127.0.0.2", port, "new")
    dns = Dnsmasq(env, {HOST_A: ["127.0.0.1"]})
    px, ports, _ = start_proxy(env, [dns_service_entry("svc-a", HOST_A, port), route("a", HOST_A, HOST_A)],
                               [f"127.0.0.1:{dns.port}"])
    assert set(names_seen(px.port, HOST_A, 4)) == {"old"}
    dns.update({HOST_A: ["127.0.0.2"]})
    moved_at = None
    start = time.monotonic()
    while time.monotonic() - start < 8:
        if set(names_seen(px.port, HOST_A, 3)) == {"new"}:
            moved_at = time.monotonic() - start
            break
        time.sleep(0.1)
    assert moved_at is not None, f"traffic still goes to the old address 8 s after the change\n{px.proc.describe()}"
    assert set(names_seen(px.port, HOST_A, 6)) == {"new"}
    assert config_version(ports) == 1, "the move must not be a configuration reload"
    [c] = dns_clusters(ports, HOST_A)
    assert c["dns"]["addresses"] == ["127.0.0.2"], c


def test_last_good_answer_survives_the_name_server(env):
    """(c) dnsmasq killed: requests keep succeeding well past the TTL; /clusters still
    lists the addresses and says why lookups fail."""
    px, ports, dns, _ = two_endpoints_of_one_name(env)
    assert set(names_seen(px.port, HOST_A, 4)) == {"a1", "a2"}
    dns.kill()
    deadline = time.monotonic() + 6   # six TTLs: several failed lookups
    while time.monotonic() < deadline:
        seen = names_seen(px.port, HOST_A, 2)
        assert set(seen) <= {"a1", "a2"}, f"{seen}\n{px.proc.describe()}"
        time.sleep(0.2)
    assert set(names_seen(px.port, HOST_A, 4)) == {"a1", "a2"}
    [c] = dns_clusters(ports, HOST_A)
    assert sorted(c["dns"]["addresses"]) == ["127.0.0.1", "127.0.0.2"], c
    assert len(c["endpoints"]) == 2, c
    assert c["dns"].get("lastError") and c["dns"]["state"] == "FAILING", f"no lastError while the name server is gone: {c}"
    # Logged once when lookups started failing, not at every retry.
    err = px.proc.stderr_text()
    assert err.count(f"dns: {HOST_A}:") == 1, err


def test_host_without_service_entry_resolves_through_the_configured_server(env):
    """(d) The DNS fallback uses the configured server too; a PUT that brings a new name is
    answered once the name resolved, so the first request after it is served."""
    port = free_port()
    echo_on(env, "127.0.0.1", port, "fallback")
    dns = Dnsmasq(env, {"fallback.remora.test": ["127.0.0.1"], "later.remora.test": ["127.0.0.1"]})
    resources = [route("fb", "shop.local", "fallback.remora.test", port)]
    px, ports, docs = start_proxy(env, resources, [f"127.0.0.1:{dns.port}"])
    r = http_request(px.port, "GET", "/", host="shop.local")
    assert r.status == 200 and r.header("x-echo-name") == "fallback", r
    [c] = dns_clusters(ports, "fallback.remora.test")
    assert c["dns"]["addresses"] == ["127.0.0.1"], c

    body = harness.documents_yaml(docs + resources + [route("later", "later.local", "later.remora.test", port)])
    st, reply = admin(ports, "PUT", "/config", body)
    assert st == 200, reply
    r = http_request(px.port, "GET", "/", host="later.local")
    assert r.status == 200 and r.header("x-echo-name") == "fallback", r


def test_ipv4_is_preferred_when_a_name_has_both_families(env):
    """A name with an A and an AAAA record: only the A record is an endpoint (the echo
    listens on IPv4 only, so round robin onto ::1 would refuse every other request)."""
    port = free_port()
    echo_on(env, "127.0.0.1", port, "v4")
    dns = Dnsmasq(env, {"dual.remora.test": ["127.0.0.1", "::1"]})
    assert dns_query(dns.port, "dual.remora.test", qtype=28) == ["::1"], "dnsmasq should serve the AAAA record"
    px, ports, _ = start_proxy(env, [route("dual", "dual.local", "dual.remora.test", port)], [f"127.0.0.1:{dns.port}"])
    assert set(names_seen(px.port, "dual.local", 6)) == {"v4"}
    [c] = dns_clusters(ports, "dual.remora.test")
    assert c["dns"]["addresses"] == ["127.0.0.1"], c


def test_a_silent_name_server_delays_nothing_beyond_the_warm_timeout(env):
    """(e) Every lookup goes to a server that never answers. Start-up and a PUT with a new
    name return within the warm timeout; routes to IP endpoints are served meanwhile; the
    name's cluster has no endpoints (503 UH)."""
    silent = SilentDNS()
    try:
        port = free_port()
        echo_on(env, "127.0.0.1", port, "static")
        resources = [harness.service_entry("static", "static.local", [port]),
                     route("static", "static.local", "static.local"),
                     route("hole", "hole.local", "blackhole.remora.test", port)]
        started = time.monotonic()
        proc, ports, docs = start_proxy(env, resources, [f"127.0.0.1:{silent.port}"], wait=False)
        wait_for_port(ports["listen"], 30, proc)
        r = http_request(ports["listen"], "GET", "/", host="static.local", timeout=WARM_TIMEOUT_S + 10)
        startup = time.monotonic() - started
        assert r.status == 200 and r.header("x-echo-name") == "static", r
        assert startup < WARM_TIMEOUT_S + 3, f"start-up took {startup:.1f}s"
        assert silent.queries > 0, "the configured server was never asked"
        r = http_request(ports["listen"], "GET", "/", host="hole.local")
        assert r.status == 503 and r.body == b"no healthy upstream", r   # UH

        # A PUT that brings a new unanswerable name: answered by the warm timeout, and the
        # static route is served at full speed while it waits.
        body = harness.documents_yaml(docs + resources + [route("hole2", "hole2.local", "blackhole2.remora.test", port)])
        result = {}

        def put():
            t = time.monotonic()
            result["reply"] = admin(ports, "PUT", "/config", body)
            result["took"] = time.monotonic() - t

        t = threading.Thread(target=put)
        t.start()
        slowest = 0.0
        served = 0
        while t.is_alive():
            t0 = time.monotonic()
            r = http_request(ports["listen"], "GET", "/", host="static.local", timeout=5)
            slowest = max(slowest, time.monotonic() - t0)
            assert r.status == 200, r
            served += 1
            time.sleep(0.05)
        t.join()
        assert result["reply"][0] == 200, result
        assert WARM_TIMEOUT_S - 0.5 <= result["took"] < WARM_TIMEOUT_S + 2, result
        assert served >= 10 and slowest < 1.0, f"{served} requests, slowest {slowest:.2f}s during the PUT"
        r = http_request(ports["listen"], "GET", "/", host="hole2.local")
        assert r.status == 503 and r.body == b"no healthy upstream", r   # UH

        # A change that brings no new name does not wait for DNS at all.
        t0 = time.monotonic()
        st, reply = admin(ports, "PUT", "/config", body.replace("hole2.local", "hole3.local"))
        assert st == 200, reply
        assert time.monotonic() - t0 < 1.0, f"a PUT without new names took {time.monotonic() - t0:.2f}s"
        assert proc.alive()
    finally:
        silent.stop()
