"""The users' feature-branch scenario (shared/examples/feature-branch.yaml) through the
real binary.

The two VirtualServices of the example are used verbatim (their text is cut out of the
file as it is). Around them: a Gateway `istio-system/ingressgateway` with the example's
selector and one plain-HTTP server on a free port (the example's own Gateway binds 443
with TLS and 80, which a test cannot use), a Proxy with the mesh outbound listener on a
free port, and STATIC ServiceEntries sending the four hosts to `remora echo` backends
named after them. Who served a request is read from the `x-echo-name` header and the
echo JSON body.

Variants of the frontend VirtualService (the `cookies` extension of SPEC §2, and the
Istio way, an RE2 `regex` on the `cookie` header) are derived from the verbatim text by
replacing only the match of its first rule.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import harness
from harness import free_port, http_request, wait_for_port

EXAMPLE = Path(os.environ.get("REMORA_EXAMPLES", "/work/shared/examples")) / "feature-branch.yaml"

SESSION = "4f9e715d-fe56-4a1e-964b-b00b607e7695"
PROBE = "shop_session-id=x-readiness-probe"

# The match of the frontend VirtualService's first rule, exactly as the example writes it.
EXACT_MATCH = (
    "  - match:\n"
    "    - headers:\n"
    "        Cookie:\n"
    f"          exact: shop_session-id={SESSION}\n"
)
COOKIES_MATCH = (
    "  - match:\n"
    "    - cookies:\n"
    "        shop_session-id:\n"
    f"          exact: {SESSION}\n"
)
# RE2, matched against the whole value (Istio): the cookie alone or among others.
REGEX_MATCH = (
    "  - match:\n"
    "    - headers:\n"
    "        cookie:\n"
    f"          regex: '^(.*?;\\s*)?shop_session-id={SESSION}(;.*)?$'\n"
)


def _example_text() -> str:
    if not EXAMPLE.is_file():
        pytest.skip(f"example not found at {EXAMPLE}")
    return EXAMPLE.read_text()


def _documents(text: str) -> list[str]:
    docs, cur = [], []
    for line in text.splitlines(keepends=True):
        if line.rstrip("\r\n") == "---":
            docs.append("".join(cur))
            cur = []
        else:
            cur.append(line)
    docs.append("".join(cur))
    return docs


def _virtual_services() -> dict[str, str]:
    """{name: verbatim document text} of the example's VirtualServices."""
    out = {}
    for d in _documents(_example_text()):
        if "\nkind: VirtualService\n" in "\n" + d:
            for line in d.splitlines():
                if line.strip().startswith("name:"):
                    out[line.split(":", 1)[1].strip()] = d
                    break
    assert set(out) == {"frontend", "adservice"}, f"unexpected VirtualServices in {EXAMPLE}: {list(out)}"
    return out


class Setup:
    def __init__(self, gateway: int, mesh: int, proc):
        self.gateway, self.mesh, self.proc = gateway, mesh, proc


def _start(env, frontend_vs: str) -> Setup:
    vss = _virtual_services()
    names = ["frontend", "frontend-myfeature", "adservice", "adservice-myfeature"]
    echoes = {n: env.echo(name=n) for n in names}
    ports = {k: free_port() for k in ("listen", "admin", "health", "metrics")}
    gw_port = free_port()
    docs = [harness.proxy_resource(ports["listen"], ports["admin"], ports["health"], ports["metrics"]),
            harness.gateway_resource("ingressgateway", gw_port, ["*"], ns="istio-system",
                                     selector={"istio": "ingressgateway"})]
    for n in names:
        se = harness.service_entry(n, n, [echoes[n].port])
        docs.append(se)
    text = harness.documents_yaml(docs)
    # the VirtualServices, as text, exactly as the example has them (frontend maybe varied)
    for vs in (frontend_vs, vss["adservice"]):
        text += "---\n" + (vs if vs.endswith("\n") else vs + "\n")
    cfg = env.dir / f"feature-branch-{ports['listen']}.yaml"
    cfg.write_text(text)
    proxy = env.run_proxy([cfg], ports, name="remora-fb")
    wait_for_port(gw_port, 15, proxy.proc)
    return Setup(gw_port, ports["listen"], proxy.proc)


def _served_by(port: int, host: str, headers=(), path: str = "/") -> str:
    r = http_request(port, "GET", path, host=host, headers=list(headers))
    assert r.status == 200, f"GET {path} Host: {host} {list(headers)} -> {r!r}"
    name = r.header("x-echo-name")
    body = r.json()
    assert body.get("name") == name, f"x-echo-name {name!r} but body name {body.get('name')!r}"
    return name


def _check_mesh_adservice(s: Setup):
    for host in ("adservice", "adservice.default.svc.cluster.local"):
        assert _served_by(s.mesh, host, [("userid", SESSION)]) == "adservice-myfeature", host
        # header names are case-insensitive
        assert _served_by(s.mesh, host, [("UserID", SESSION)]) == "adservice-myfeature", host
        assert _served_by(s.mesh, host, [("userid", "someone-else")]) == "adservice", host
        assert _served_by(s.mesh, host, [("userid", SESSION + "0")]) == "adservice", host
        assert _served_by(s.mesh, host, []) == "adservice", host
        # the session cookie is the gateway's business, not adservice's
        assert _served_by(s.mesh, host, [("Cookie", f"shop_session-id={SESSION}")]) == "adservice", host


def test_example_verbatim(env):
    s = _start(env, _virtual_services()["frontend"])
    gw = s.gateway
    # at the gateway (host "*"): the session cookie alone picks the branch
    assert _served_by(gw, "shop.example", [("Cookie", f"shop_session-id={SESSION}")]) == "frontend-myfeature"
    assert _served_by(gw, "anything.example", [("Cookie", f"shop_session-id={SESSION}")],
                      path="/product/OLJCESPC7Z") == "frontend-myfeature"
    # everything else goes to the mainline
    assert _served_by(gw, "shop.example") == "frontend"
    assert _served_by(gw, "shop.example", [("Cookie", PROBE)], path="/_healthz") == "frontend"
    assert _served_by(gw, "shop.example", [("Cookie", f"shop_session-id={SESSION}0")]) == "frontend"
    # `Cookie: exact:` compares the whole header value: among other cookies it does not match
    assert _served_by(gw, "shop.example",
                      [("Cookie", f"a=1; shop_session-id={SESSION}; b=2")]) == "frontend"
    # the adservice VirtualService is bound to the mesh only: at the gateway a request for
    # adservice with the branch's userid still falls to the frontend VirtualService ("*")
    assert _served_by(gw, "adservice", [("userid", SESSION)]) == "frontend"
    # in the mesh, the userid header picks the adservice branch
    _check_mesh_adservice(s)
    assert s.proc.alive()


@pytest.mark.parametrize("variant", ["cookies-extension", "cookie-header-regex"])
def test_cookie_among_others_variants(env, variant):
    verbatim = _virtual_services()["frontend"]
    assert EXACT_MATCH in verbatim, f"the example's frontend rule changed:\n{verbatim}"
    frontend = verbatim.replace(EXACT_MATCH, COOKIES_MATCH if variant == "cookies-extension" else REGEX_MATCH)
    s = _start(env, frontend)
    gw = s.gateway
    branch = [
        f"shop_session-id={SESSION}",
        f"a=1; shop_session-id={SESSION}; b=2",
        f"theme=dark; shop_session-id={SESSION}",
        f"shop_session-id={SESSION}; x=1",
    ]
    mainline = [
        PROBE,
        f"a=1; {PROBE}; b=2",
        f"shop_session-id={SESSION}0",
        f"a=1; shop_session-id={SESSION}x; b=2",
        f"a=1; other_session-id={SESSION}; b=2",
        "a=1; b=2",
    ]
    for c in branch:
        assert _served_by(gw, "shop.example", [("Cookie", c)]) == "frontend-myfeature", f"{variant}: Cookie: {c}"
    for c in mainline:
        assert _served_by(gw, "shop.example", [("Cookie", c)]) == "frontend", f"{variant}: Cookie: {c}"
    assert _served_by(gw, "shop.example", [("Cookie", PROBE)], path="/_healthz") == "frontend"
    assert _served_by(gw, "shop.example") == "frontend"
    _check_mesh_adservice(s)
    assert s.proc.alive()


def test_validate_accepts_example_as_is(env):
    _example_text()
    r = env.run("validate", "-c", EXAMPLE)
    assert r.returncode == 0, f"remora validate -c {EXAMPLE}: rc={r.returncode}\nstdout={r.stdout}\nstderr={r.stderr}"
