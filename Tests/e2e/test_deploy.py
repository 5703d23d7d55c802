"""The deployment artefacts in docker/ (docker/README.md).

- Every Kubernetes manifest in docker/kubernetes/ validates against the Kubernetes 1.30
  schemas (kubernetes-validate, offline, strict: unknown fields are errors), and only
  built-in kinds are applied to the API: the Istio resources are Remora's configuration,
  shipped in ConfigMaps.
- The Remora configuration inside each ConfigMap passes `remora validate`, and the
  Deployments wire it up as the README says: sidecar as uid 1337 with readiness on
  :15021/healthz/ready, the iptables init container, the ConfigMap at /etc/remora, the
  credentials under /etc/remora/credentials, the gateway Service 443 -> 8443, 80 -> 8080;
  docker/remora-iptables.sh --dry-run accepts the init containers' arguments.
- The walkthrough's resources (../shared/examples/feature-branch.yaml) are in the
  ConfigMaps as they are (the Gateway with the pod's ports), and the gateway and mesh
  configurations route as the README shows, run here with the ports moved to free ones and
  the DNS ServiceEntries pointed at local `remora echo` backends.
- docker/Dockerfile parses (the official parser, `dockerfile` on PyPI) and agrees with
  docker/rootfs.sh: same setup script, same package list, uid 1337, `remora run`.
- Opt-in (REMORA_ROOTFS_SMOKE=1; root): docker/rootfs.sh, which debootstraps the runtime
  root filesystem, builds the static binary and smoke-tests it (about 40 s plus the static
  build, 3-4 min cold, when .build-rootfs/ and .build-static/ are empty; a few seconds warm).
  REMORA_STATIC_BIN=PATH uses that binary instead of building one.
"""
from __future__ import annotations

import copy
import fnmatch
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import harness
from harness import free_port, wait_for_port

kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate not installed (make deps)")
import yaml  # noqa: E402  (PyYAML comes with kubernetes-validate)

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
K8S = DOCKER / "kubernetes"
EXAMPLE = REPO.parent / "shared" / "examples" / "feature-branch.yaml"
K8S_VERSION = "1.30"
MANIFESTS = sorted(K8S.glob("*.yaml"))

SIDECAR_IMAGE = "remora:dev"
INIT_IMAGE = "remora-init:dev"
IPTABLES_ARGS = ["--proxy-uid", "1337", "--outbound-port", "15001", "--inbound-port", "15006",
                 "--exclude-inbound-ports", "15021,15090,15000"]
SESSION = "4f9e715d-fe56-4a1e-964b-b00b607e7695"


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_docs() -> list[tuple[str, dict]]:
    return [(p.name, d) for p in MANIFESTS for d in load(p)]


def by_kind(kind: str) -> list[tuple[str, dict]]:
    return [(f, d) for f, d in all_docs() if d["kind"] == kind]


def configmap(name: str) -> dict:
    hits = [d for _, d in by_kind("ConfigMap") if d["metadata"]["name"] == name]
    assert len(hits) == 1, f"ConfigMap {name}: {len(hits)} found"
    return hits[0]


def config_resources(cm: dict) -> list[dict]:
    """The Remora resources of a ConfigMap, in the order `remora run -c DIR` reads them."""
    out = []
    for key in sorted(cm["data"]):
        out += [d for d in yaml.safe_load_all(cm["data"][key]) if d]
    return out


def write_configmap(cm: dict, dir: Path) -> Path:
    dir.mkdir(parents=True, exist_ok=True)
    for key, text in cm["data"].items():
        (dir / key).write_text(text)
    return dir


def pod_spec(dep: dict) -> dict:
    return dep["spec"]["template"]["spec"]


def container(spec: dict, name: str, init: bool = False) -> dict | None:
    return next((c for c in spec.get("initContainers" if init else "containers", []) if c["name"] == name), None)


def deployments_with_sidecar() -> list[tuple[str, dict]]:
    return [(f, d) for f, d in by_kind("Deployment") if container(pod_spec(d), "remora")]


def projected_sources(spec: dict, container_: dict, mount_path: str) -> list[dict]:
    mount = next(m for m in container_["volumeMounts"] if m["mountPath"] == mount_path)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    return volume["projected"]["sources"]


# -- the manifests against the Kubernetes schemas

def test_the_three_manifests_exist():
    assert {p.name for p in MANIFESTS} >= {"sidecar.yaml", "gateway.yaml", "feature-branch.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_kubernetes_schemas(path):
    docs = load(path)
    assert docs, f"{path.name} has no document"
    errors = []
    for i, doc in enumerate(docs):
        where = f"{path.name} document {i + 1} ({doc.get('kind')} {doc.get('metadata', {}).get('name')})"
        try:
            kv.validate(doc, K8S_VERSION, strict=True)
        except kv.ValidationError as e:
            errors.append(f"{where}: {'.'.join(map(str, e.path))}: {e.message}")
        except kv.SchemaNotFoundError as e:
            errors.append(f"{where}: {e.message} (Istio resources go into a ConfigMap as Remora's configuration)")
        # one namespace, the one applied to (the destinations are short DNS names)
        if "namespace" in doc.get("metadata", {}):
            errors.append(f"{where}: sets metadata.namespace")
    assert not errors, "\n".join(errors)


def test_names_are_unique_and_references_resolve():
    seen = {}
    for f, d in all_docs():
        key = (d["kind"], d["metadata"]["name"])
        assert key not in seen, f"{key} in both {seen[key]} and {f}"
        seen[key] = f
    for f, dep in by_kind("Deployment"):
        spec = pod_spec(dep)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), f"{f}: selector"
        if "serviceAccountName" in spec:
            assert ("ServiceAccount", spec["serviceAccountName"]) in seen, f"{f}: no ServiceAccount"
        for v in spec.get("volumes", []):
            for s in v.get("projected", {}).get("sources", []):
                if "configMap" in s:
                    assert ("ConfigMap", s["configMap"]["name"]) in seen, f"{f}: no ConfigMap {s['configMap']['name']}"
    pods = [dep["spec"]["template"]["metadata"]["labels"] for _, dep in by_kind("Deployment")]
    for f, svc in by_kind("Service"):
        sel = svc["spec"]["selector"]
        assert any(sel.items() <= p.items() for p in pods), f"{f}: Service {svc['metadata']['name']} selects no pod"


# -- the wiring of Remora in the pods

@pytest.mark.parametrize("name", [d["metadata"]["name"] for _, d in deployments_with_sidecar()
                                  if "initContainers" in pod_spec(d)])
def test_sidecar_deployment(name):
    dep = next(d for _, d in by_kind("Deployment") if d["metadata"]["name"] == name)
    spec = pod_spec(dep)
    proxy = container(spec, "remora")
    init = container(spec, "remora-init", init=True)
    assert proxy["image"] == SIDECAR_IMAGE and proxy["args"] == ["-c", "/etc/remora"]
    sc = proxy["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"], sc["runAsNonRoot"]) == (1337, 1337, True)
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021}
    assert {p["containerPort"] for p in proxy["ports"]} == {15001, 15006, 15021, 15090}
    assert set(proxy["resources"]) == {"requests", "limits"}
    # the init container installs the capture rules
    assert init["image"] == INIT_IMAGE
    assert init["command"] == ["/usr/local/bin/remora-iptables.sh"] and init["args"] == IPTABLES_ARGS
    assert set(init["securityContext"]["capabilities"]["add"]) == {"NET_ADMIN", "NET_RAW"}
    assert init["securityContext"]["runAsUser"] == 0
    # the application is not uid 1337, whose traffic the rules exempt
    for c in spec["containers"]:
        if c is not proxy:
            assert c.get("securityContext", {}).get("runAsUser") not in (None, 1337), f"{c['name']}: uid"
    # the proxy outlives its drain
    assert spec["terminationGracePeriodSeconds"] > 30


def test_init_arguments_are_accepted_by_the_iptables_script():
    """The init containers' arguments, given to docker/remora-iptables.sh --dry-run."""
    script = DOCKER / "remora-iptables.sh"
    if not script.is_file():
        pytest.skip(f"{script} not written yet")
    r = subprocess.run(["sh", str(script), "--dry-run", *IPTABLES_ARGS], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "15001" in r.stdout and "15006" in r.stdout


def test_sidecars_are_the_same_everywhere():
    """feature-branch.yaml repeats sidecar.yaml's init and proxy containers: same spec."""
    specs = {}
    for f, dep in deployments_with_sidecar():
        spec = pod_spec(dep)
        if "initContainers" not in spec:
            continue
        specs[f"{f}:{dep['metadata']['name']}"] = json.dumps(
            [container(spec, "remora-init", init=True), container(spec, "remora"),
             spec["securityContext"], spec["terminationGracePeriodSeconds"]], sort_keys=True)
    assert len(specs) >= 5
    reference = specs.pop("sidecar.yaml:echo")
    different = [k for k, v in specs.items() if v != reference]
    assert not different, f"differs from sidecar.yaml: {different}"


@pytest.mark.parametrize("name", [d["metadata"]["name"] for _, d in deployments_with_sidecar()])
def test_config_and_credentials_mounts(name):
    """/etc/remora: the ConfigMap's files; /etc/remora/credentials/NAME/: Secrets, where
    the Proxy's credentialsDir looks for a `credentialName`."""
    dep = next(d for _, d in by_kind("Deployment") if d["metadata"]["name"] == name)
    spec = pod_spec(dep)
    sources = projected_sources(spec, container(spec, "remora"), "/etc/remora")
    cms = [s["configMap"]["name"] for s in sources if "configMap" in s]
    assert len(cms) == 1
    resources = config_resources(configmap(cms[0]))
    proxies = [r for r in resources if r["kind"] == "Proxy"]
    assert len(proxies) == 1
    assert proxies[0]["spec"].get("credentialsDir", "/etc/remora/credentials") == "/etc/remora/credentials"
    assert proxies[0]["spec"].get("watch") is True
    assert "items" not in next(s for s in sources if "configMap" in s)["configMap"]
    secret_paths = [i["path"] for s in sources if "secret" in s for i in s["secret"].get("items", [])]
    assert secret_paths and all(p.startswith("credentials/") for p in secret_paths), secret_paths
    for gw in (r for r in resources if r["kind"] == "Gateway"):
        for server in gw["spec"]["servers"]:
            name_ = server.get("tls", {}).get("credentialName")
            if name_:
                files = {p for p in secret_paths if p.startswith(f"credentials/{name_}/")}
                names = {p.rsplit("/", 1)[1] for p in files}
                assert {"cert", "key"} <= names or {"tls.crt", "tls.key"} <= names, f"credential {name_}: {files}"


def test_gateway_service_and_ports():
    svc = next(d for _, d in by_kind("Service") if d["metadata"]["name"] == "remora-ingressgateway")
    assert svc["spec"]["type"] == "LoadBalancer"
    ports = {p["port"]: p["targetPort"] for p in svc["spec"]["ports"]}
    assert ports == {443: 8443, 80: 8080}
    dep = next(d for _, d in by_kind("Deployment") if d["metadata"]["name"] == "remora-ingressgateway")
    spec = pod_spec(dep)
    proxy = container(spec, "remora")
    assert "initContainers" not in spec
    assert {8443, 8080, 15021, 15090} <= {p["containerPort"] for p in proxy["ports"]}
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021}
    assert proxy["securityContext"]["runAsUser"] == 1337
    resources = config_resources(configmap("remora-ingressgateway"))
    bound = {s["port"]["number"] for r in resources if r["kind"] == "Gateway" for s in r["spec"]["servers"]}
    assert bound == {8443, 8080}, "the Gateway binds the Service's target ports"
    proxy_res = next(r for r in resources if r["kind"] == "Proxy")
    assert proxy_res["spec"]["meshListeners"] == {}, "a gateway has no mesh listeners"


# -- the Remora configuration inside the ConfigMaps

@pytest.mark.parametrize("name", [d["metadata"]["name"] for _, d in by_kind("ConfigMap")])
def test_configmap_passes_remora_validate(name, remora_bin, tmp_path):
    d = write_configmap(configmap(name), tmp_path / name)
    r = subprocess.run([str(remora_bin), "validate", "-c", str(d)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"remora validate -c <ConfigMap {name}>: exit {r.returncode}\n{r.stdout}{r.stderr}"


def _example() -> list[dict]:
    if not EXAMPLE.is_file():
        pytest.skip(f"{EXAMPLE} not found")
    return load(EXAMPLE)


def test_walkthrough_resources_are_shipped_as_they_are():
    example = {(d["kind"], d["metadata"]["name"]): d for d in _example()}
    gateway_cm = config_resources(configmap("remora-ingressgateway"))
    mesh_cm = config_resources(configmap("remora-mesh"))

    def find(resources, kind, name):
        return next(r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name)

    assert find(gateway_cm, "VirtualService", "frontend") == example[("VirtualService", "frontend")]
    assert find(mesh_cm, "VirtualService", "adservice") == example[("VirtualService", "adservice")]
    # the Gateway: as it is, with the Service's port -> target port
    svc = next(d for _, d in by_kind("Service") if d["metadata"]["name"] == "remora-ingressgateway")
    to_target = {p["port"]: p["targetPort"] for p in svc["spec"]["ports"]}
    expected = copy.deepcopy(example[("Gateway", "ingressgateway")])
    for s in expected["spec"]["servers"]:
        s["port"]["number"] = to_target[s["port"]["number"]]
    assert find(gateway_cm, "Gateway", "ingressgateway") == expected


def _localize(resources: list[dict], tmp: Path, backends: dict[str, int]) -> tuple[list[dict], dict]:
    """The resources with every port moved to a free one on 127.0.0.1 and every DNS
    ServiceEntry pointed at a local backend. Returns (resources, ports)."""
    out, ports = [], {}
    for r in copy.deepcopy(resources):
        spec = r["spec"]
        if r["kind"] == "Proxy":
            for key in ("admin", "health", "metrics"):
                ports[key] = free_port()
                spec[key] = {"address": "127.0.0.1", "port": ports[key]}
            for side, addr in (spec.get("meshListeners") or {}).items():
                ports[side] = free_port()
                spec["meshListeners"][side] = {"address": "127.0.0.1", "port": ports[side]}
            spec["workers"] = 1
            spec["credentialsDir"] = str(tmp / "credentials")
            spec.pop("watch", None)
        elif r["kind"] == "Gateway":
            for s in spec["servers"]:
                ports[s["port"]["number"]] = free_port()
                s["port"]["number"] = ports[s["port"]["number"]]
                s["bind"] = "127.0.0.1"
        elif r["kind"] == "ServiceEntry" and spec["resolution"] == "DNS":
            (host,) = spec["hosts"]
            (port,) = spec["ports"]
            spec["resolution"] = "STATIC"
            spec["endpoints"] = [{"address": "127.0.0.1", "ports": {port["name"]: backends[host]}}]
        out.append(r)
    return out, ports


def _start(env, name: str, resources: list[dict], backends: dict[str, int]):
    d = env.dir / name
    d.mkdir(exist_ok=True)
    local, ports = _localize(resources, d, backends)
    (d / "config.yaml").write_text(yaml.safe_dump_all(local, sort_keys=False))
    p = env.pm.start(name, [str(env.bin), "run", "-c", str(d / "config.yaml")])
    wait_for_port(ports["health"], 20, p)
    return d, ports


def _curl_name(*args) -> str:
    """'STATUS NAME': the status and x-echo-name of one request."""
    r = harness.curl("-o", "/dev/null", "-w", "%{http_code}", "-D", "-", "--max-time", "10", *args)
    head = r.stdout.decode(errors="replace")
    status = head.rsplit("\n", 1)[-1].strip()
    names = [l.split(":", 1)[1].strip() for l in head.splitlines() if l.lower().startswith("x-echo-name:")]
    return f"{status} {names[0] if names else '-'}"


def test_gateway_and_mesh_configurations_route_the_walkthrough(env):
    names = ["frontend", "frontend-myfeature", "adservice", "adservice-myfeature", "echo"]
    backends = {n: env.echo(n).port for n in names}

    # the ingress gateway: the session cookie picks the frontend branch, over HTTP and HTTPS;
    # the credential octopus.tech as the Secret's keys `cert` and `key` (shared/examples)
    cred = env.dir / "gateway" / "credentials" / "octopus.tech"
    cred.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=octopus.tech", "-addext", "subjectAltName=DNS:octopus.tech",
                    "-keyout", str(cred / "key"), "-out", str(cred / "cert")], check=True, capture_output=True)
    _, gw = _start(env, "gateway", config_resources(configmap("remora-ingressgateway")), backends)
    http = f"http://127.0.0.1:{gw[8080]}/"
    assert _curl_name(http) == "200 frontend"
    assert _curl_name("-H", f"Cookie: shop_session-id={SESSION}", http) == "200 frontend-myfeature"
    assert _curl_name("-H", "Cookie: shop_session-id=x-readiness-probe", http) == "200 frontend"
    https = ["--cacert", str(cred / "cert"), "--resolve", f"octopus.tech:{gw[8443]}:127.0.0.1",
             f"https://octopus.tech:{gw[8443]}/"]
    assert _curl_name(*https) == "200 frontend"
    assert _curl_name("-H", f"Cookie: shop_session-id={SESSION}", *https) == "200 frontend-myfeature"

    # a sidecar of the walkthrough: the userid header picks the adservice branch (upstream gRPC = h2c)
    _, mesh = _start(env, "mesh", config_resources(configmap("remora-mesh")), backends)
    out = f"http://127.0.0.1:{mesh['outbound']}/hipstershop.AdService/GetAds"
    assert _curl_name("-H", "Host: adservice:9555", out) == "200 adservice"
    assert _curl_name("-H", "Host: adservice", "-H", f"userid: {SESSION}", out) == "200 adservice-myfeature"
    assert _curl_name("--http2-prior-knowledge", "-H", "Host: adservice", "-H", f"userid: {SESSION}", out) \
        == "200 adservice-myfeature"

    # sidecar.yaml's example route: a request header set on the way
    _, side = _start(env, "sidecar", config_resources(configmap("echo-remora")), backends)
    r = harness.curl("--max-time", "10", "-H", "Host: echo", f"http://127.0.0.1:{side['outbound']}/")
    body = json.loads(r.stdout)
    assert body["name"] == "echo" and harness.echo_headers(body).get("x-via") == "remora-sidecar"


# -- the Dockerfile, the rootfs script, the package list

def _dockerignore_allows(path: str, patterns: list[str]) -> bool:
    """BuildKit's rule, enough for an allow-list file: the last pattern matching the path or
    one of its parent directories decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    allowed = True
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        if p.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(x.rsplit("/", 1)[-1], p[3:]) for x in prefixes)
        else:
            hit = any(fnmatch.fnmatchcase(x, p) and x.count("/") == p.count("/") for x in prefixes)
        if hit:
            allowed = neg
    return allowed


def test_dockerfile():
    dockerfile = pytest.importorskip("dockerfile", reason="dockerfile (PyPI) not installed (make deps)")
    cmds = dockerfile.parse_file(str(DOCKER / "Dockerfile"))
    stages, current = {}, None
    for c in cmds:
        if c.cmd == "FROM":
            current = c.value[2] if len(c.value) > 2 and c.value[1].upper() == "AS" else c.value[0]
            stages[current] = [c]
        elif current:
            stages[current].append(c)
    assert list(stages) == ["build", "runtime-base", "init", "runtime"], list(stages)

    def instr(stage, cmd):
        return [c for c in stages[stage] if c.cmd == cmd]

    build_runs = " ".join(" ".join(c.value) for c in instr("build", "RUN"))
    assert "--static-swift-stdlib" in build_runs and "--product remora" in build_runs
    base_runs = " ".join(" ".join(c.value) for c in instr("runtime-base", "RUN"))
    assert "setup-runtime.sh /tmp/docker/runtime-packages.txt" in base_runs
    init_runs = " ".join(" ".join(c.value) for c in instr("init", "RUN"))
    assert "setup-runtime.sh /tmp/docker/init-packages.txt" in init_runs
    assert [c.value for c in instr("runtime", "USER")] == [("1337:1337",)]
    assert [c.value for c in instr("runtime", "ENTRYPOINT")] == [("/usr/local/bin/remora", "run")]
    assert [c.value for c in instr("runtime", "CMD")] == [("-c", "/etc/remora")]
    exposed = {v for c in instr("runtime", "EXPOSE") for v in c.value}
    assert {"15021", "15090", "15001", "15006"} <= exposed and "15000" not in exposed
    assert [c.value for c in instr("init", "ENTRYPOINT")] == [("/usr/local/bin/remora-iptables.sh",)]

    # every file the context must provide: present (the iptables script may still be to come:
    # only the init target needs it) and not excluded by docker/Dockerfile.dockerignore
    patterns = [l.strip() for l in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    sources = []
    for c in cmds:
        if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags):
            sources += [s for s in c.value[:-1]]
        if c.cmd == "RUN":
            for f in c.flags:
                if "type=bind" in f:
                    opts = dict(pair.split("=", 1) for pair in f.split("=", 1)[1].split(",") if "=" in pair)
                    src = opts["source"]
                    sources += [f"{src}/setup-runtime.sh", f"{src}/runtime-packages.txt", f"{src}/init-packages.txt"]
    for s in sources:
        s = s.rstrip("*")
        if s != "docker/remora-iptables.sh":
            assert (REPO / s).exists(), f"the Dockerfile needs {s}"
        assert _dockerignore_allows(s, patterns), f"Dockerfile.dockerignore excludes {s}"
    for excluded in (".build/release/remora", ".build-static/release/remora", ".git/config", "Tests/e2e/test_deploy.py"):
        assert not _dockerignore_allows(excluded, patterns), f"{excluded} would be sent to the builder"


def test_rootfs_script_uses_what_the_image_uses():
    text = (DOCKER / "rootfs.sh").read_text()
    assert "setup-runtime.sh" in text and "runtime-packages.txt" in text and "--static-swift-stdlib" in text
    for script, shell in (("rootfs.sh", "bash"), ("setup-runtime.sh", "sh")):
        r = subprocess.run([shell, "-n", str(DOCKER / script)], capture_output=True, text=True)
        assert r.returncode == 0, f"{script}: {r.stderr}"
    packages = [l.split("#")[0].strip() for l in (DOCKER / "runtime-packages.txt").read_text().splitlines()]
    packages = [p for p in packages if p]
    assert {"libnghttp2-14", "libssl3", "libre2-9"} <= set(packages)
    assert not any(p.endswith("-dev") for p in packages)


@pytest.mark.skipif(os.environ.get("REMORA_ROOTFS_SMOKE") != "1",
                    reason="opt-in: REMORA_ROOTFS_SMOKE=1 runs docker/rootfs.sh (debootstrap + static build)")
def test_rootfs_smoke():
    if os.geteuid() != 0:
        pytest.skip("docker/rootfs.sh needs root (debootstrap, chroot, unshare)")
    if shutil.which("unshare") is None:
        pytest.skip("unshare is missing")
    args = [str(DOCKER / "rootfs.sh")]
    if os.environ.get("REMORA_STATIC_BIN"):
        args += ["--binary", os.environ["REMORA_STATIC_BIN"]]
    r = subprocess.run(args, capture_output=True, text=True, timeout=1500)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    for line in ("ok: GET /healthz/ready (200)", "ok: GET through the mesh route (200)",
                 "ok: remora runs as uid (1337)", "ok: exit status after SIGTERM (PID 1) (0)"):
        assert line in out, out[-6000:]
    assert "not found" not in out
