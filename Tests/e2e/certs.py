"""A throw-away PKI for the TLS tests, made with the `openssl` CLI (EC P-256, fast).

    pki = make_pki(tmp_path / "pki", server_names=["echo.test", "localhost", "127.0.0.1"])
    pki["ca"], pki["server_cert"], pki["server_key"], pki["client_cert"], pki["client_key"]

Names are DNS names, IP addresses, or URIs (`spiffe://…`), each put in the
subjectAltName extension as DNS:, IP: or URI:. `make_leaf` adds more certificates
signed by the same CA (a second SNI certificate, a rotated one).
"""
from __future__ import annotations

import ipaddress
import secrets
import subprocess
from pathlib import Path

_CA_CNF = """[req]
distinguished_name = dn
prompt = no
x509_extensions = v3
[dn]
O = Remora
CN = {cn}
[v3]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""


def _openssl(*args) -> None:
    r = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{r.stderr}")


def _san(name: str) -> str:
    if "://" in name:
        return f"URI:{name}"
    try:
        ipaddress.ip_address(name)
        return f"IP:{name}"
    except ValueError:
        return f"DNS:{name}"


def _key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)


def make_leaf(pki: dict, name: str, names: list[str], cn: str | None = None,
              dir: str | Path | None = None) -> tuple[str, str]:
    """A certificate signed by pki's CA, for server and client use: (cert path, key path).
    `names` go into subjectAltName; the CN is `cn` or the first name."""
    d = Path(dir) if dir is not None else Path(pki["dir"])
    d.mkdir(parents=True, exist_ok=True)
    key, csr, ext, cert = (d / f"{name}.key", d / f"{name}.csr", d / f"{name}.ext", d / f"{name}.pem")
    _key(key)
    subject_cn = cn or (names[0] if names else name)
    _openssl("req", "-new", "-key", key, "-subj", f"/O=Remora/CN={subject_cn}", "-out", csr)
    lines = ["basicConstraints = CA:FALSE",
             "keyUsage = critical,digitalSignature,keyEncipherment",
             "extendedKeyUsage = serverAuth,clientAuth",
             "subjectKeyIdentifier = hash",
             "authorityKeyIdentifier = keyid"]
    if names:
        lines.append("subjectAltName = " + ",".join(_san(n) for n in names))
    ext.write_text("\n".join(lines) + "\n")
    _openssl("x509", "-req", "-in", csr, "-CA", pki["ca"], "-CAkey", pki["ca_key"],
             "-set_serial", "0x" + secrets.token_hex(16), "-days", "825", "-extfile", ext, "-out", cert)
    return str(cert), str(key)


def make_pki(dir: str | Path, server_names: list[str] = ("localhost",),
             client_names: list[str] = ("spiffe://cluster.local/ns/default/sa/client",),
             ca_name: str = "Remora Test CA") -> dict:
    """A CA, a server certificate for `server_names` and a client certificate for
    `client_names` (CN "client"), in `dir`. Returns the paths (strings): dir, ca,
    ca_key, server_cert, server_key, client_cert, client_key."""
    d = Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    pki = {"dir": str(d), "ca": str(d / "ca.pem"), "ca_key": str(d / "ca.key")}
    (d / "ca.cnf").write_text(_CA_CNF.format(cn=ca_name))
    _key(d / "ca.key")
    _openssl("req", "-x509", "-new", "-key", d / "ca.key", "-config", d / "ca.cnf", "-days", "3650",
             "-out", d / "ca.pem")
    pki["server_cert"], pki["server_key"] = make_leaf(pki, "server", list(server_names))
    pki["client_cert"], pki["client_key"] = make_leaf(pki, "client", list(client_names), cn="client")
    return pki


if __name__ == "__main__":
    import sys
    out = make_pki(sys.argv[1] if len(sys.argv) > 1 else "pki", sys.argv[2:] or ["localhost"])
    for k, v in out.items():
        print(f"{k}: {v}")
