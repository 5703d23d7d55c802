"""TLS through the real binary: the ingress gateway terminating HTTPS (downstream TLS) and
sidecars originating TLS to their upstreams (DestinationRule `trafficPolicy.tls`).

Downstream: Gateway `servers[]` with `tls` (SPEC §2): SIMPLE with file paths or with
`credentialName` resolved under the Proxy's `credentialsDir` (NAME/tls.crt+tls.key[+ca.crt]
or NAME/cert+key, the two layouts Kubernetes secrets take, mounted the way the kubelet
mounts them: NAME/..data -> ..TIMESTAMP/, NAME/tls.crt -> ..data/tls.crt), MUTUAL and
OPTIONAL_MUTUAL with `caCertificates`, SNI picking the certificate among several servers
on one port (the first server's certificate is the default for an unknown or absent SNI),
ALPN h2/http/1.1, TLS 1.3 by default and TLS 1.2 accepted, TLS 1.0/1.1 refused,
`minProtocolVersion`/`maxProtocolVersion`/`cipherSuites`, session resumption with tickets,
certificate rotation without a restart (new connections get the new certificate, live
ones keep working), `httpsRedirect` on a plain server, and handshake errors closing only
their own connection with the reason in the log.

Upstream: `remora echo --tls-cert/--tls-key` (SPEC §7) as an HTTPS backend behind a mesh
ServiceEntry (port protocol HTTP, or HTTP2 where ALPN must pick h2) with a DestinationRule
SIMPLE (caCertificates, sni, subjectAltNames, insecureSkipVerify); a wrong SAN or an
untrusted CA gives 503/502 with the failure (UF, certificate/verify) in the proxy's log;
TLS upstream connections are reused (counted in /proc/net/tcp). MUTUAL upstream runs
against a small Python HTTPS server defined here that requires a client certificate
(`remora echo` has no client-auth option).

Peers: curl (--cacert, --resolve, --http2/--http1.1, --cert/--key), `openssl s_client`
(protocol version, cipher, served certificate), Python's ssl module (keep-alive
connections, ALPN, session resumption, refused old protocol versions).

Certificates are made once per module with the openssl command line (EC P-256, valid 3
days): a CA, a second untrusted CA, server certificates with the SANs below and distinct
CNs (a served certificate is recognised by its CN and serial), client certificates.
Tests/e2e/certs.py did not exist when this file was written, hence the local helpers.
"""
from __future__ import annotations

import json
import os
import re
import urllib.request
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import harness
from harness import RawConn, echo_headers, free_port, http_request, wait_for_port

SHOP = "shop.example.com"
ADMIN = "admin.example.com"
ECHO_SAN = "echo.test"          # SAN of the upstream echo's certificate
SECURE = "secure.mesh"          # mesh host of the TLS upstream
GW = "tls-gateway"              # Gateway istio-system/tls-gateway
ROTATION_DEADLINE = 10.0        # s for a rotated certificate to be served on new connections
REFUSED = (ssl.SSLError, ConnectionError, harness.ConnectionClosed, OSError)


# ---------------------------------------------------------------------------
# certificates (openssl command line)

@dataclass
class Cert:
    crt: Path
    key: Path
    cn: str
    serial: str   # upper-case hex, as `openssl x509 -serial` prints it


def _openssl(*args, input: bytes | None = None) -> str:
    r = subprocess.run(["openssl", *map(str, args)], capture_output=True, timeout=30,
                       input=input if input is not None else b"")
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed: "
                           f"{r.stderr.decode('utf-8', 'replace')}")
    return r.stdout.decode("utf-8", "replace")


def _serial() -> int:
    return int.from_bytes(os.urandom(8), "big") >> 1 | 1 << 56   # positive, 57..63 bits


def make_ca(d: Path, cn: str) -> Cert:
    d.mkdir(parents=True, exist_ok=True)
    key, crt = d / f"{cn}.key", d / f"{cn}.crt"
    serial = _serial()
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", crt, "-days", "3", "-set_serial", serial,
             "-subj", f"/O=Remora e2e/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return Cert(crt, key, cn, f"{serial:X}")


def make_leaf(d: Path, cn: str, ca: Cert, sans: list[str] = (), client: bool = False) -> Cert:
    """A certificate signed by `ca`: serverAuth with DNS SANs, or clientAuth."""
    key, csr, crt, ext = (d / f"{cn}{s}" for s in (".key", ".csr", ".crt", ".ext"))
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", csr, "-subj", f"/O=Remora e2e/CN={cn}")
    lines = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
             f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}"]
    if sans:
        lines.append("subjectAltName=" + ",".join(f"DNS:{s}" for s in sans))
    ext.write_text("\n".join(lines) + "\n")
    serial = _serial()
    _openssl("x509", "-req", "-in", csr, "-CA", ca.crt, "-CAkey", ca.key, "-set_serial", serial,
             "-days", "3", "-extfile", ext, "-out", crt)
    return Cert(crt, key, cn, f"{serial:X}")


class Pki:
    def __init__(self, d: Path):
        self.dir = d
        self.ca = make_ca(d, "remora-e2e-ca")
        self.other_ca = make_ca(d, "remora-e2e-other-ca")      # trusted by nobody
        self.shop = make_leaf(d, "shop-v1", self.ca, [SHOP])
        self.shop_v2 = make_leaf(d, "shop-v2", self.ca, [SHOP])
        self.admin = make_leaf(d, "admin", self.ca, [ADMIN])
        self.echo = make_leaf(d, "echo-upstream", self.ca, [ECHO_SAN])
        self.client = make_leaf(d, "client", self.ca, client=True)
        self.rogue_client = make_leaf(d, "rogue-client", self.other_ca, client=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command line not found")
    return Pki(tmp_path_factory.mktemp("pki"))


def cert_of_der(der: bytes) -> tuple[str, str]:
    """(CN, serial hex) of a DER certificate."""
    out = _openssl("x509", "-inform", "DER", "-noout", "-subject", "-serial", input=der)
    cn = re.search(r"CN\s*=\s*([^,/\n]+)", out)
    serial = re.search(r"serial=([0-9A-Fa-f]+)", out)
    return (cn.group(1).strip() if cn else ""), (serial.group(1).upper().lstrip("0") if serial else "")


# ---------------------------------------------------------------------------
# configuration builders

def tls_files(cert: Cert, mode: str = "SIMPLE", ca: Cert | None = None, **extra) -> dict:
    t = {"mode": mode, "serverCertificate": str(cert.crt), "privateKey": str(cert.key)}
    if ca is not None:
        t["caCertificates"] = str(ca.crt)
    t.update(extra)
    return t


def server(port: int, hosts: list[str], tls: dict | None, protocol: str = "HTTPS") -> dict:
    s = {"port": {"number": port, "name": f"{protocol.lower()}-{port}", "protocol": protocol},
         "hosts": hosts}
    if tls is not None:
        s["tls"] = tls
    return s


def gateway(servers: list[dict], name: str = GW) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": "istio-system"},
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers}}


def gateway_route(name: str, hosts: list[str], dest: str) -> dict:
    vs = harness.virtual_service(name, hosts, dest)
    vs["spec"]["gateways"] = [f"istio-system/{GW}"]
    return vs


def destination_rule_tls(host: str, tls: dict, name: str = "upstream-tls") -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"host": host, "trafficPolicy": {"tls": tls}}}


def k8s_secret(root: Path, name: str, files: dict[str, Path | bytes]) -> Path:
    """Write (or update) root/NAME the way the kubelet mounts a secret: the files in a new
    ..TIMESTAMP directory, the ..data symlink swapped to it atomically (rename of a new
    symlink over the old one), NAME/FILE -> ..data/FILE, the previous directory removed."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    stamp = d / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.time_ns() % 10**9:09d}"
    stamp.mkdir()
    for fname, src in files.items():
        (stamp / fname).write_bytes(src if isinstance(src, bytes) else Path(src).read_bytes())
    tmp = d / "..data_tmp"
    os.symlink(stamp.name, tmp)
    os.replace(tmp, d / "..data")
    for fname in files:
        link = d / fname
        if not link.is_symlink():
            os.symlink(f"..data/{fname}", link)
    for old in d.iterdir():
        if old.name.startswith("..") and old.name not in ("..data", stamp.name) and not old.is_symlink():
            shutil.rmtree(old)
    return d


def plain_secret(root: Path, name: str, files: dict[str, Path]) -> Path:
    """root/NAME with plain files (a secret copied into a directory by hand)."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    for fname, src in files.items():
        (d / fname).write_bytes(Path(src).read_bytes())
    return d


# ---------------------------------------------------------------------------
# starting the proxy

class Gw:
    def __init__(self, proxy, ports: list[int], echoes: dict):
        self.proxy, self.proc, self.ports, self.echoes = proxy, proxy.proc, ports, echoes

    @property
    def port(self) -> int:
        return self.ports[0]


def _wait_listener(port: int, proc, timeout: float = 5.0) -> None:
    """The proxy binds every listener before serving, so once its mesh listener accepts, a
    gateway port that does not is one the proxy did not open."""
    try:
        wait_for_port(port, timeout, proc)
    except RuntimeError as e:
        pytest.fail(f"gateway listener on port {port} never accepted connections "
                    f"(TLS listener not served?)\n{e}", pytrace=False)


def start_gateway(env, servers: list[dict], backends: dict[str, str],
                  proxy_extra: dict | None = None, name: str = "remora-tls",
                  wait: list[int] | None = None) -> Gw:
    """servers: the Gateway's servers; backends: {gateway host: echo name}: one `remora echo`
    per host, a STATIC ServiceEntry `<echo name>.backend` for it and a VirtualService bound
    to the gateway sending that host there. Waits until every gateway port (or those in
    `wait`) accepts connections."""
    ports = {k: free_port() for k in ("listen", "admin", "health", "metrics")}
    docs = [harness.proxy_resource(ports["listen"], ports["admin"], ports["health"],
                                   ports["metrics"], extra=proxy_extra),
            gateway(servers)]
    echoes = {}
    for i, (host, echo_name) in enumerate(backends.items()):
        if echo_name not in echoes:
            echoes[echo_name] = env.echo(name=echo_name)
            docs.append(harness.service_entry(f"be-{echo_name}", f"{echo_name}.backend",
                                              [echoes[echo_name].port]))
        docs.append(gateway_route(f"vs-{i}", [host], f"{echo_name}.backend"))
    cfg = env.write(docs, f"{name}-{ports['listen']}.yaml")
    px = env.run_proxy([cfg], ports, name)
    gw_ports = list(dict.fromkeys(s["port"]["number"] for s in servers))
    for p in (gw_ports if wait is None else wait):
        _wait_listener(p, px.proc)
    return Gw(px, gw_ports, echoes)


def simple_gateway(env, pki: Pki, tls: dict | None = None, protocol: str = "HTTPS",
                   proxy_extra: dict | None = None) -> Gw:
    port = free_port()
    return start_gateway(env, [server(port, [SHOP], tls or tls_files(pki.shop), protocol)],
                         {SHOP: "shop"}, proxy_extra)


# ---------------------------------------------------------------------------
# clients

def client_ctx(ca: Cert | None = None, cert: Cert | None = None, alpn=("http/1.1",),
               minv: ssl.TLSVersion | None = None, maxv: ssl.TLSVersion | None = None,
               ciphers: str | None = None) -> ssl.SSLContext:
    """A client context verifying against `ca` (no verification when ca is None)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(str(ca.crt))
    if cert is not None:
        ctx.load_cert_chain(str(cert.crt), str(cert.key))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if ciphers:
        ctx.set_ciphers(ciphers)
    if minv is not None:
        ctx.minimum_version = minv
    if maxv is not None:
        ctx.maximum_version = maxv
    return ctx


class TLSConn(RawConn):
    """A TLS client connection with RawConn's reading helpers (keep-alive HTTP/1.1)."""

    def __init__(self, port: int, sni: str | None, ctx: ssl.SSLContext, timeout: float = 5.0,
                 session: ssl.SSLSession | None = None, host: str = "127.0.0.1"):
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=sni, session=session)
        except BaseException:
            raw.close()
            raise
        self.sock.settimeout(timeout)
        self.buf = b""

    def get(self, host: str = SHOP, path: str = "/", close: bool = False) -> harness.Response:
        conn = "close" if close else "keep-alive"
        self.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: {conn}\r\n\r\n".encode())
        return self.read_response()

    def peer(self) -> tuple[str, str]:
        """(CN, serial) of the certificate the server presented."""
        return cert_of_der(self.sock.getpeercert(binary_form=True))

    def version(self) -> str | None:
        return self.sock.version()


def tls_get(port: int, sni: str | None, ctx: ssl.SSLContext, host: str = SHOP,
            path: str = "/") -> tuple[harness.Response, tuple[str, str], TLSConn]:
    """One request on a new TLS connection (left open for the caller to close)."""
    c = TLSConn(port, sni, ctx)
    try:
        r = c.get(host, path)
        return r, c.peer(), c
    except BaseException:
        c.close()
        raise


def refused(port: int, sni: str | None, ctx: ssl.SSLContext, host: str = SHOP) -> Exception | None:
    """The exception with which a TLS connection + GET failed, or None when it got an answer.
    (With TLS 1.3 a rejected client certificate surfaces at the first read, not in the
    client's handshake.)"""
    try:
        c = TLSConn(port, sni, ctx)
    except TimeoutError as e:
        raise AssertionError(f"TLS handshake timed out instead of failing: {e!r}")
    except REFUSED as e:
        return e
    try:
        c.get(host)
        return None
    except TimeoutError as e:
        raise AssertionError(f"no answer and no close within the timeout: {e!r}")
    except REFUSED as e:
        return e
    finally:
        c.close()


class CurlHttps:
    def __init__(self, cp: subprocess.CompletedProcess, body: bytes):
        self.rc = cp.returncode
        parts = cp.stdout.decode().split()
        self.code = int(parts[0]) if parts else 0
        self.http_version = parts[1] if len(parts) > 1 else ""
        self.stderr = cp.stderr.decode("utf-8", "replace").strip()
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f"<curl rc={self.rc} code={self.code} http_version={self.http_version} "
                f"stderr={self.stderr!r} body={self.body[:300]!r}>")


_curl_n = 0


def curl_https(tmpdir: Path, port: int, ca: Cert, http: str = "2", host: str = SHOP,
               path: str = "/", cert: Cert | None = None, extra=()) -> CurlHttps:
    """curl https://HOST:PORT/PATH resolved to 127.0.0.1, verifying against `ca`."""
    global _curl_n
    _curl_n += 1
    out = Path(tmpdir) / f"curl-tls-{_curl_n}.body"
    args = ["--http2" if http == "2" else "--http1.1", "--cacert", ca.crt,
            "--resolve", f"{host}:{port}:127.0.0.1", "-o", out,
            "-w", "%{http_code} %{http_version}", "--max-time", "10"]
    if cert is not None:
        args += ["--cert", cert.crt, "--key", cert.key]
    args += [*extra, f"https://{host}:{port}{path}"]
    cp = harness.curl(*args, timeout=20)
    body = out.read_bytes() if out.exists() else b""
    return CurlHttps(cp, body)


class SClient:
    """The outcome of `openssl s_client` (stdin at EOF: handshake, print, close)."""

    def __init__(self, cp: subprocess.CompletedProcess):
        self.rc = cp.returncode
        self.out = cp.stdout.decode("utf-8", "replace")
        self.err = cp.stderr.decode("utf-8", "replace")
        m = re.search(r"^\s*Protocol\s*:\s*(\S+)", self.out, re.M)
        n = re.search(r"^New, (\S+), Cipher is (\S+)", self.out, re.M)
        self.protocol = m.group(1) if m else (n.group(1).rstrip(",") if n else "")
        self.cipher = n.group(2) if n else ""
        self.verified = "Verify return code: 0 (ok)" in self.out
        pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", self.out, re.S)
        self.cn, self.serial = "", ""
        if pem:
            der = ssl.PEM_cert_to_DER_cert(pem.group(0))
            self.cn, self.serial = cert_of_der(der)
        self.ok = self.rc == 0 and pem is not None and self.cipher not in ("", "(NONE)")

    def __repr__(self):
        tail = "\n".join((self.out + self.err).strip().splitlines()[-12:])
        return (f"<s_client rc={self.rc} ok={self.ok} protocol={self.protocol} cipher={self.cipher} "
                f"cn={self.cn} serial={self.serial} verified={self.verified}>\n{tail}")


def s_client(port: int, sni: str | None = SHOP, *extra, ca: Cert | None = None,
             timeout: float = 10) -> SClient:
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
    args += ["-servername", sni] if sni else ["-noservername"]
    if ca is not None:
        args += ["-CAfile", str(ca.crt)]
    args += [str(a) for a in extra]
    return SClient(subprocess.run(args, input=b"", capture_output=True, timeout=timeout))


def log_text(proc) -> str:
    """Everything the process wrote (stderr, then stdout where the access log goes)."""
    out = ""
    try:
        out = proc.out_path.read_text("utf-8", "replace")
    except OSError:
        pass
    return proc.stderr_text() + "\n" + out


def connections_to(port: int) -> set[int]:
    """Client-side ports of every TCP connection to port the kernel still knows about
    (ESTABLISHED, TIME_WAIT, ...), seen from either end, from /proc/net/tcp{,6}."""
    seen: set[int] = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(f).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            parts = ln.split()
            local, remote, state = parts[1], parts[2], parts[3]
            lport, rport = int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)
            if state == "0A":  # LISTEN
                continue
            if rport == port:
                seen.add(lport)
            elif lport == port:
                seen.add(rport)
    return seen


def send_and_wait_close(port: int, data: bytes, timeout: float) -> tuple[bool, bytes]:
    """Send raw bytes; (closed by the peer within timeout, what it sent before closing)."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return True, got
            except socket.timeout:
                return False, got
            if not chunk:
                return True, got
            got += chunk
    return False, got


def assert_still_serving(g: Gw, pki: Pki) -> None:
    assert g.proc.alive(), "the proxy died"
    r, peer, c = tls_get(g.port, SHOP, client_ctx(pki.ca))
    c.close()
    assert r.status == 200 and r.header("x-echo-name") == "shop", r


# ---------------------------------------------------------------------------
# downstream: the gateway terminates TLS

@pytest.mark.parametrize("protocol", ["HTTPS", "HTTP2"])
def test_simple_tls_http2_by_alpn_and_http11(env, pki, protocol):
    g = simple_gateway(env, pki, protocol=protocol)
    h2 = curl_https(env.dir, g.port, pki.ca, http="2")
    assert h2.rc == 0 and h2.code == 200 and h2.http_version == "2", h2
    assert h2.json()["name"] == "shop", h2
    # the edge sets x-forwarded-proto from the downstream connection (SPEC §6)
    assert echo_headers(h2.json()).get("x-forwarded-proto") == "https", h2
    h1 = curl_https(env.dir, g.port, pki.ca, http="1.1", path="/some/path?q=1")
    assert h1.rc == 0 and h1.code == 200 and h1.http_version == "1.1", h1
    assert h1.json()["path"] == "/some/path?q=1" and h1.json()["protocol"] == "HTTP/1.1", h1
    assert echo_headers(h1.json()).get("x-forwarded-proto") == "https", h1
    # ALPN as a client sees it: h2 preferred when offered, http/1.1 when only it is offered
    c = TLSConn(g.port, SHOP, client_ctx(pki.ca, alpn=("h2", "http/1.1")))
    assert c.sock.selected_alpn_protocol() == "h2"
    c.close()
    c = TLSConn(g.port, SHOP, client_ctx(pki.ca, alpn=("http/1.1",)))
    assert c.sock.selected_alpn_protocol() == "http/1.1"
    assert c.peer() == (pki.shop.cn, pki.shop.serial)
    assert c.get().status == 200 and c.get(path="/again").status == 200   # keep-alive
    c.close()


def test_tls13_by_default_tls12_accepted_tls10_and_11_refused(env, pki):
    g = simple_gateway(env, pki)
    s = s_client(g.port, SHOP, ca=pki.ca)
    assert s.ok and s.protocol == "TLSv1.3" and s.verified, s
    assert (s.cn, s.serial) == (pki.shop.cn, pki.shop.serial), s
    s12 = s_client(g.port, SHOP, "-tls1_2", ca=pki.ca)
    assert s12.ok and s12.protocol == "TLSv1.2" and s12.verified, s12
    # an old client: OpenSSL 3 needs security level 0 to even offer TLS 1.0/1.1
    for flag in ("-tls1", "-tls1_1"):
        old = s_client(g.port, SHOP, flag, "-cipher", "DEFAULT@SECLEVEL=0", ca=pki.ca)
        assert not old.ok, f"{flag} accepted by default:\n{old!r}"
    ctx = client_ctx(pki.ca, minv=ssl.TLSVersion.TLSv1, maxv=ssl.TLSVersion.TLSv1,
                     ciphers="DEFAULT@SECLEVEL=0")
    assert refused(g.port, SHOP, ctx) is not None, "a TLS 1.0 client got an answer"
    # the Python client with its defaults also lands on TLS 1.3
    c = TLSConn(g.port, SHOP, client_ctx(pki.ca))
    assert c.version() == "TLSv1.3"
    c.close()
    assert_still_serving(g, pki)


def test_protocol_versions_and_cipher_suites(env, pki):
    p13, p12 = free_port(), free_port()
    chacha = "ECDHE-ECDSA-CHACHA20-POLY1305"   # the certificates are ECDSA
    g = start_gateway(env, [
        server(p13, [SHOP], tls_files(pki.shop, minProtocolVersion="TLSV1_3")),
        server(p12, [SHOP], tls_files(pki.shop, maxProtocolVersion="TLSV1_2", cipherSuites=[chacha])),
    ], {SHOP: "shop"})
    # minProtocolVersion TLSV1_3
    s = s_client(p13, SHOP, ca=pki.ca)
    assert s.ok and s.protocol == "TLSv1.3", s
    s = s_client(p13, SHOP, "-tls1_2", ca=pki.ca)
    assert not s.ok, f"TLS 1.2 accepted with minProtocolVersion TLSV1_3:\n{s!r}"
    # maxProtocolVersion TLSV1_2 with one cipher suite
    s = s_client(p12, SHOP, ca=pki.ca)
    assert s.ok and s.protocol == "TLSv1.2" and s.cipher == chacha, s
    s = s_client(p12, SHOP, "-tls1_3", ca=pki.ca)
    assert not s.ok, f"TLS 1.3 accepted with maxProtocolVersion TLSV1_2:\n{s!r}"
    s = s_client(p12, SHOP, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384", ca=pki.ca)
    assert not s.ok, f"a cipher suite outside cipherSuites was accepted:\n{s!r}"
    for port, version in ((p13, "TLSv1.3"), (p12, "TLSv1.2")):
        r, peer, c = tls_get(port, SHOP, client_ctx(pki.ca))
        assert r.status == 200 and r.header("x-echo-name") == "shop" and c.version() == version, r
        c.close()


@pytest.mark.parametrize("mode", ["MUTUAL", "OPTIONAL_MUTUAL"])
def test_client_certificates(env, pki, mode):
    g = simple_gateway(env, pki, tls=tls_files(pki.shop, mode=mode, ca=pki.ca))
    # a client certificate signed by the CA: 200, HTTP/2 and HTTP/1.1
    for http in ("2", "1.1"):
        r = curl_https(env.dir, g.port, pki.ca, http=http, cert=pki.client)
        assert r.rc == 0 and r.code == 200 and r.json()["name"] == "shop", r
    # no client certificate: the handshake fails for MUTUAL, 200 for OPTIONAL_MUTUAL
    r = curl_https(env.dir, g.port, pki.ca)
    e = refused(g.port, SHOP, client_ctx(pki.ca))
    if mode == "MUTUAL":
        assert r.rc != 0 and r.code == 0, f"MUTUAL without a client certificate: {r!r}"
        assert e is not None, "MUTUAL: a client without a certificate got an answer"
    else:
        assert r.rc == 0 and r.code == 200, r
        assert e is None, f"OPTIONAL_MUTUAL without a client certificate: {e!r}"
    # a certificate from a CA the gateway does not trust: refused in both modes
    r = curl_https(env.dir, g.port, pki.ca, cert=pki.rogue_client)
    assert r.rc != 0 and r.code == 0, f"{mode}: untrusted client certificate: {r!r}"
    assert refused(g.port, SHOP, client_ctx(pki.ca, cert=pki.rogue_client)) is not None
    # the Python client with a good certificate, after all the refusals
    r, peer, c = tls_get(g.port, SHOP, client_ctx(pki.ca, cert=pki.client))
    c.close()
    assert r.status == 200 and r.header("x-echo-name") == "shop", r
    assert g.proc.alive()


@pytest.mark.parametrize("layout", ["tls.crt", "cert", "tls.crt+ca.crt"])
def test_credential_name_from_credentials_dir(env, pki, layout):
    creds = env.dir / "credentials"
    if layout == "tls.crt":       # a kubernetes.io/tls secret, mounted by the kubelet
        k8s_secret(creds, "shop-cert", {"tls.crt": pki.shop.crt, "tls.key": pki.shop.key})
        tls = {"mode": "SIMPLE", "credentialName": "shop-cert"}
    elif layout == "cert":        # a generic secret with keys cert/key, plain files
        plain_secret(creds, "shop-cert", {"cert": pki.shop.crt, "key": pki.shop.key})
        tls = {"mode": "SIMPLE", "credentialName": "shop-cert"}
    else:                         # MUTUAL: the CA from ca.crt in the same secret
        k8s_secret(creds, "shop-cert", {"tls.crt": pki.shop.crt, "tls.key": pki.shop.key,
                                        "ca.crt": pki.ca.crt})
        tls = {"mode": "MUTUAL", "credentialName": "shop-cert"}
    g = simple_gateway(env, pki, tls=tls, proxy_extra={"credentialsDir": str(creds)})
    mutual = layout == "tls.crt+ca.crt"
    client = pki.client if mutual else None
    s = s_client(g.port, SHOP, *(["-cert", pki.client.crt, "-key", pki.client.key] if mutual else []),
                 ca=pki.ca)
    assert s.ok and s.verified and (s.cn, s.serial) == (pki.shop.cn, pki.shop.serial), s
    for http in ("2", "1.1"):
        r = curl_https(env.dir, g.port, pki.ca, http=http, cert=client)
        assert r.rc == 0 and r.code == 200 and r.json()["name"] == "shop", r
    if mutual:
        r = curl_https(env.dir, g.port, pki.ca)
        assert r.rc != 0 and r.code == 0, f"MUTUAL (ca.crt) without a client certificate: {r!r}"


def test_sni_picks_the_certificate(env, pki):
    port = free_port()
    g = start_gateway(env, [server(port, [SHOP], tls_files(pki.shop)),
                            server(port, [ADMIN], tls_files(pki.admin))],
                      {SHOP: "shop", ADMIN: "admin"})
    live = TLSConn(port, SHOP, client_ctx(pki.ca))
    try:
        assert live.get().status == 200
        for host, cert, echo in ((SHOP, pki.shop, "shop"), (ADMIN, pki.admin, "admin")):
            s = s_client(port, host, ca=pki.ca)
            assert s.ok and s.verified and (s.cn, s.serial) == (cert.cn, cert.serial), f"SNI {host}: {s!r}"
            r, peer, c = tls_get(port, host, client_ctx(pki.ca), host=host)
            c.close()
            assert peer == (cert.cn, cert.serial), f"SNI {host}: served {peer}"
            assert r.status == 200 and r.header("x-echo-name") == echo, r
            for http in ("2", "1.1"):
                cr = curl_https(env.dir, port, pki.ca, http=http, host=host)
                assert cr.rc == 0 and cr.code == 200 and cr.json()["name"] == echo, cr
        # an unknown SNI and no SNI at all get the default: the first server's certificate
        for sni in ("unknown.example.org", None):
            s = s_client(port, sni)
            assert s.ok and (s.cn, s.serial) == (pki.shop.cn, pki.shop.serial), f"SNI {sni}: {s!r}"
            c = TLSConn(port, sni, client_ctx())
            assert c.peer() == (pki.shop.cn, pki.shop.serial), f"SNI {sni}"
            c.close()
        # the connection opened first still works
        r = live.get(path="/after")
        assert r.status == 200 and r.header("x-echo-name") == "shop", r
    finally:
        live.close()
    assert g.proc.alive()


@pytest.mark.parametrize("source", ["credentialName", "file paths"])
def test_certificate_rotation_without_restart(env, pki, source):
    creds = env.dir / "credentials"
    d = k8s_secret(creds, "shop-cert", {"tls.crt": pki.shop.crt, "tls.key": pki.shop.key})
    if source == "credentialName":
        tls = {"mode": "SIMPLE", "credentialName": "shop-cert"}
    else:
        tls = {"mode": "SIMPLE", "serverCertificate": str(d / "tls.crt"),
               "privateKey": str(d / "tls.key")}
    g = simple_gateway(env, pki, tls=tls, proxy_extra={"credentialsDir": str(creds)})
    pid = g.proc.pid
    s = s_client(g.port, SHOP, ca=pki.ca)
    assert s.ok and (s.cn, s.serial) == (pki.shop.cn, pki.shop.serial), s
    live = TLSConn(g.port, SHOP, client_ctx(pki.ca))
    try:
        r = live.get()
        assert r.status == 200 and live.peer() == (pki.shop.cn, pki.shop.serial), r
        # the secret is updated: new files, ..data swapped, the old directory gone
        k8s_secret(creds, "shop-cert", {"tls.crt": pki.shop_v2.crt, "tls.key": pki.shop_v2.key})
        t0 = time.monotonic()
        deadline = t0 + ROTATION_DEADLINE
        while True:
            s = s_client(g.port, SHOP, ca=pki.ca)
            if s.ok and (s.cn, s.serial) == (pki.shop_v2.cn, pki.shop_v2.serial):
                break
            assert time.monotonic() < deadline, (
                f"still not serving the rotated certificate {ROTATION_DEADLINE}s after the swap: {s!r}")
            time.sleep(0.2)
        assert s.verified, s
        # new connections: the new certificate
        r, peer, c = tls_get(g.port, SHOP, client_ctx(pki.ca))
        c.close()
        assert peer == (pki.shop_v2.cn, pki.shop_v2.serial) and r.status == 200, (peer, r)
        # the connection opened before the swap is untouched and still serves
        for i in range(3):
            r = live.get(path=f"/live/{i}")
            assert r.status == 200 and r.header("x-echo-name") == "shop", r
        assert live.peer() == (pki.shop.cn, pki.shop.serial)
    finally:
        live.close()
    assert g.proc.alive() and g.proc.pid == pid, "the proxy restarted or died"


@pytest.mark.parametrize("maxv", [None, ssl.TLSVersion.TLSv1_2], ids=["TLSv1.3", "TLSv1.2"])
def test_session_resumption_with_tickets(env, pki, maxv):
    g = simple_gateway(env, pki)
    ctx = client_ctx(pki.ca, maxv=maxv)
    first = TLSConn(g.port, SHOP, ctx)
    try:
        assert first.get().status == 200     # reading the answer also reads the tickets
        sess = first.sock.session
        assert not first.sock.session_reused
    finally:
        first.close()
    assert sess is not None and sess.has_ticket, f"no session ticket from the gateway ({first.version()})"
    again = TLSConn(g.port, SHOP, ctx, session=sess)
    try:
        assert again.sock.session_reused, f"session not resumed ({again.version()})"
        r = again.get()
        assert r.status == 200 and r.header("x-echo-name") == "shop", r
    finally:
        again.close()


def test_https_redirect_on_plain_server(env, pki):
    http_port, https_port = free_port(), free_port()
    g = start_gateway(env, [server(http_port, [SHOP], {"httpsRedirect": True}, protocol="HTTP"),
                            server(https_port, [SHOP], tls_files(pki.shop))], {SHOP: "shop"},
                      wait=[http_port])
    for path in ("/", "/some/path?q=1"):
        r = http_request(http_port, "GET", path, host=SHOP)
        assert r.status == 301, r
        assert r.header("location") == f"https://{SHOP}{path}", r
        assert r.header("x-echo-name") is None, f"the redirect reached the backend: {r!r}"
    # the HTTPS server beside it serves
    _wait_listener(https_port, g.proc)
    r = curl_https(env.dir, https_port, pki.ca)
    assert r.rc == 0 and r.code == 200, r


def test_handshake_errors_close_only_their_connection(env, pki):
    g = simple_gateway(env, pki)
    live = TLSConn(g.port, SHOP, client_ctx(pki.ca))
    try:
        assert live.get().status == 200
        before = len(g.proc.stderr_text())
        # a TLS 1.0 client
        old = s_client(g.port, SHOP, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0")
        assert not old.ok, old
        # plain HTTP to the TLS port (protocol mismatch), then bytes that are not a
        # ClientHello: each connection is closed (maybe after an alert), never answered 2xx
        for what, data in (("plain HTTP", f"GET / HTTP/1.1\r\nHost: {SHOP}\r\n\r\n".encode()),
                           ("garbage", b"\x16\x03\x01\x00\x05hello" + os.urandom(64))):
            closed, got = send_and_wait_close(g.port, data, 5)
            assert closed, f"{what} on the TLS port: connection still open after 5 s, got {got[:200]!r}"
            assert not got.startswith(b"HTTP/1.1 2"), f"{what}: {got[:200]!r}"
        # a client that does not trust the gateway aborts its handshake
        assert refused(g.port, SHOP, client_ctx(pki.other_ca)) is not None
        # the live connection and new ones are unaffected
        for i in range(2):
            r = live.get(path=f"/live/{i}")
            assert r.status == 200 and r.header("x-echo-name") == "shop", r
        assert_still_serving(g, pki)
    finally:
        live.close()
    # the reasons are logged
    time.sleep(0.2)
    new = g.proc.stderr_text()[before:]
    assert re.search(r"tls|ssl|handshake|protocol|version|alert|certificate|cipher", new, re.I), (
        f"no reason for the failed handshakes in the proxy's log; new log text:\n{new[-2000:]}")
    # and counted
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{g.proxy.ports['metrics']}/stats/prometheus", timeout=5).read().decode()
    m = re.search(r"^remora_tls_handshake_failures_total (\d+)", metrics, re.M)
    assert m and int(m.group(1)) >= 3, metrics[-1500:]


# ---------------------------------------------------------------------------
# upstream: the sidecar originates TLS

def start_mesh_to(env, backend_port: int, tls_by_host: dict[str, dict | None],
                  protocol: str = "HTTP", name: str = "remora-mesh"):
    """A proxy whose mesh listener routes each host of tls_by_host to backend_port (a STATIC
    ServiceEntry, port 80 with `protocol`, and a VirtualService per host), with a
    DestinationRule carrying that host's upstream `tls` (none when None). The access log
    goes to stdout, where the test reads response flags such as UF."""
    ports = {k: free_port() for k in ("listen", "admin", "health", "metrics")}
    docs = [harness.proxy_resource(ports["listen"], ports["admin"], ports["health"], ports["metrics"],
                                   extra={"accessLog": {"path": "stdout"}})]
    for i, (host, tls) in enumerate(tls_by_host.items()):
        docs.append(harness.service_entry(f"upstream-{i}", host, [backend_port], protocol=protocol,
                                          port_name=protocol.lower()))
        docs.append(harness.virtual_service(f"upstream-{i}", [host], host))
        if tls is not None:
            docs.append(destination_rule_tls(host, tls, name=f"upstream-tls-{i}"))
    return env.run_proxy([env.write(docs, f"{name}-{ports['listen']}.yaml")], ports, name)


def tls_echo(env, pki: Pki, name: str = "secure"):
    return env.echo(name=name, tls_cert=pki.echo.crt, tls_key=pki.echo.key)


def simple_upstream_tls(pki: Pki, **over) -> dict:
    t = {"mode": "SIMPLE", "caCertificates": str(pki.ca.crt), "sni": ECHO_SAN,
         "subjectAltNames": [ECHO_SAN]}
    t.update(over)
    return t


def mutual_upstream_tls(pki: Pki, **over) -> dict:
    return simple_upstream_tls(pki, mode="MUTUAL", clientCertificate=str(pki.client.crt),
                               privateKey=str(pki.client.key), **over)


BAD = "bad.mesh"   # a second mesh host to the same backend, with failing TLS settings


@pytest.mark.parametrize("protocol,seen", [("HTTP", "HTTP/1.1"), ("HTTP2", "HTTP/2")])
def test_upstream_tls_verified_and_reused(env, pki, protocol, seen):
    echo = tls_echo(env, pki)
    # the echo serves TLS with its certificate (checked directly, not through the proxy)
    c = TLSConn(echo.port, ECHO_SAN, client_ctx(pki.ca))
    try:
        assert c.peer() == (pki.echo.cn, pki.echo.serial)
    finally:
        c.close()
    px = start_mesh_to(env, echo.port, {SECURE: simple_upstream_tls(pki)}, protocol)
    before = connections_to(echo.port)
    n, after_each = 12, []
    for i in range(n):
        r = http_request(px.port, "GET", f"/req/{i}", host=SECURE)
        assert r.status == 200 and r.header("x-echo-name") == "secure", r
        body = r.json()
        # ALPN: h2 where the port says HTTP2, HTTP/1.1 otherwise
        assert body["protocol"] == seen and body["path"] == f"/req/{i}", body
        after_each.append(connections_to(echo.port) - before)
    # reuse: the connection to the upstream outlives each request and serves the next
    # (a connection closed with a reset leaves no TIME_WAIT, so the kernel's table is
    # read after every request, not only at the end)
    used = set().union(*after_each)
    assert 1 <= len(used) <= 2, (f"{n} sequential requests used {len(used)} TLS connections "
                                 f"to the upstream (after each request: {after_each}): not reused")
    assert after_each[0] & after_each[-1], f"the first upstream connection was not kept: {after_each}"
    assert px.proc.alive()


@pytest.mark.parametrize("case", ["wrong SAN", "untrusted CA", "no client certificate"])
def test_upstream_tls_verification_failure_is_503_uf(env, pki, case):
    """BAD has failing TLS settings, SECURE (same backend, same proxy) the right ones: the
    failure is the settings', not a backend or a proxy that cannot do TLS at all."""
    if case == "no client certificate":       # the backend requires one; SIMPLE sends none
        backend = ClientCertBackend(pki.echo, pki.ca)
        env.servers.append(backend)
        port, good, bad, name = backend.port, mutual_upstream_tls(pki), simple_upstream_tls(pki), "mtls"
    else:
        port, good, name = tls_echo(env, pki).port, simple_upstream_tls(pki), "secure"
        bad = (simple_upstream_tls(pki, subjectAltNames=["wrong.test"]) if case == "wrong SAN"
               else simple_upstream_tls(pki, caCertificates=str(pki.other_ca.crt)))
    px = start_mesh_to(env, port, {BAD: bad, SECURE: good})
    before = len(log_text(px.proc))
    r = http_request(px.port, "GET", "/", host=BAD)
    assert r.status in (503, 502), f"{case}: {r!r}"
    assert r.header("x-echo-name") is None, r
    time.sleep(0.3)
    new = log_text(px.proc)[before:]
    # UF (Envoy's flag for a failed upstream connection, a TLS handshake included) or the
    # reason; with TLS 1.3 a rejected client certificate shows after the client's
    # handshake, so UC and the alert count there too
    pattern = r"\bUF\b|certificate|verif" + (r"|\bUC\b|alert|handshake" if case == "no client certificate" else "")
    assert re.search(pattern, new, re.I), (
        f"{case}: the failure is not in the proxy's log; new log text:\n{new[-2000:]}")
    r = http_request(px.port, "GET", "/", host=SECURE)
    assert r.status == 200 and r.header("x-echo-name") == name, f"{case}: the control host: {r!r}"
    r = http_request(px.port, "GET", "/", host=BAD)
    assert r.status in (503, 502), f"{case}, after a good connection to the same backend: {r!r}"
    assert px.proc.alive()


def test_upstream_tls_insecure_skip_verify(env, pki):
    echo = tls_echo(env, pki)
    # neither the CA nor the SAN would verify: insecureSkipVerify accepts the certificate
    px = start_mesh_to(env, echo.port, {SECURE: simple_upstream_tls(
        pki, caCertificates=str(pki.other_ca.crt), subjectAltNames=["wrong.test"],
        insecureSkipVerify=True)})
    r = http_request(px.port, "GET", "/", host=SECURE)
    assert r.status == 200 and r.header("x-echo-name") == "secure", r
    assert r.json()["protocol"] == "HTTP/1.1", r


def test_upstream_mutual_tls(env, pki):
    backend = ClientCertBackend(pki.echo, pki.ca)
    env.servers.append(backend)
    px = start_mesh_to(env, backend.port, {SECURE: mutual_upstream_tls(pki)})
    for i in range(5):
        r = http_request(px.port, "GET", f"/m/{i}", host=SECURE)
        assert r.status == 200 and r.header("x-echo-name") == "mtls", r
        assert r.json()["path"] == f"/m/{i}", r
        assert r.header("x-client-cn") == pki.client.cn, r     # the client certificate
        assert r.header("x-sni") == ECHO_SAN, r                # DestinationRule sni
    assert not backend.failures, backend.failures
    assert 1 <= backend.handshakes_ok <= 2, f"{backend.handshakes_ok} handshakes for 5 requests: not reused"


# ---------------------------------------------------------------------------
# a Python HTTPS/1.1 upstream that requires a client certificate

class ClientCertBackend:
    """HTTPS (HTTP/1.1, keep-alive) on 127.0.0.1, requiring a client certificate signed by
    `ca`. Answers every request 200 with x-echo-name: mtls, x-client-cn (the client
    certificate's CN) and x-sni (the SNI the client sent)."""

    def __init__(self, cert: Cert, ca: Cert):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert.crt), str(cert.key))
        self.ctx.load_verify_locations(str(ca.crt))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.sni: dict[int, str | None] = {}
        self.ctx.sni_callback = self._on_sni
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.handshakes_ok = 0
        self.failures: list[str] = []
        self._stop = False
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _on_sni(self, sslsock, name, ctx):
        self.sni[id(sslsock)] = name   # sslsock: the SSLSocket wrap_socket returns

    def _accept(self):
        while not self._stop:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s: socket.socket):
        try:
            s.settimeout(10)
            try:
                t = self.ctx.wrap_socket(s, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.failures.append(repr(e))
                return
            self.handshakes_ok += 1
            peer = t.getpeercert() or {}
            cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), "")
            sni = self.sni.pop(id(t), None)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = t.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
                n = int(hdrs.get("content-length", "0") or 0)
                while len(buf) < n:
                    chunk = t.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                buf = buf[n:]
                body = json.dumps({"name": "mtls", "method": method, "path": path,
                                   "clientCN": cn, "sni": sni}).encode()
                close = hdrs.get("connection", "").lower() == "close"
                t.sendall(b"HTTP/1.1 200 OK\r\nx-echo-name: mtls\r\n"
                          + f"x-client-cn: {cn}\r\nx-sni: {sni}\r\n".encode()
                          + b"content-type: application/json\r\n"
                          + f"content-length: {len(body)}\r\n".encode()
                          + (b"connection: close\r\n" if close else b"") + b"\r\n" + body)
                if close:
                    return
        except OSError:
            return
        finally:
            try:
                s.close()
            except OSError:
                pass

    def stop(self):
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
