"""`remora ctl` (SPEC §1, §4, §4.4): the admin API client, driven as a user would drive it.

Two kinds of admin server:

- `FakeAdmin` (below): a small in-process admin API in Python (http.server in a thread)
  that follows SPEC §4 (versions, ETag, If-Match/412, ?dryRun, history, rollback,
  explain, 400 with every error) and records every request, so tests can check the
  exact JSON `remora ctl` writes back and force races (a barrier holds GETs until two
  writers have read the same version).
- the real proxy (`remora run` with its admin port): the `admin` fixture is parametrised
  over both; the real case skips, with the reason, while `remora run` does not serve
  the admin API. Tests that take `admin` only use the SPEC contract (they check
  outcomes by reading the configuration back, never the fake's internals); tests that
  take `fake` check wire details only the fake can show.

Every resource a test creates has a name of its own, so the tests can share one real
proxy per module.
"""
from __future__ import annotations

import itertools
import json
import os
import pathlib
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import harness
from harness import free_port

API = "networking.istio.io/v1"
PLURALS = {"Gateway": "gateways", "VirtualService": "virtualservices",
           "DestinationRule": "destinationrules", "ServiceEntry": "serviceentries",
           "Proxy": "proxies"}
KINDS = {v: k for k, v in PLURALS.items()}
# Destination hosts the tests use; the real proxy gets a STATIC ServiceEntry for each (port 80;
# adservice-myfeature: 8080) and a DestinationRule with subsets v1/v2 for adservice-myfeature.
DEST_HOSTS = ["adservice", "adservice-old", "adservice-myfeature", "adservice-alice",
              "adservice-bob", "frontend", "frontend-myfeature"] + [f"branch-{i}" for i in range(8)]


# ---------------------------------------------------------------------------
# the fake admin API

class Req:
    def __init__(self, method, path, query, headers, body):
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.method} {self.path}{'?' + self.query if self.query else ''} {self.body[:120]!r}>"


def _key(r: dict) -> tuple[str, str, str]:
    meta = r.get("metadata") or {}
    return PLURALS.get(r.get("kind"), "?"), meta.get("namespace", "default"), meta.get("name", "")


def _desc(plural, ns, name) -> str:
    return f"{KINDS.get(plural, plural)} {ns}/{name}"


def _changes(old: dict, new: dict) -> list[str]:
    """What RemoraAdmin lists in `changed`: "Kind ns/name created|updated|deleted"."""
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            what = "created" if k not in old else "deleted" if k not in new else "updated"
            out.append(f"{_desc(*k)} {what}")
    return out


class FakeAdmin:
    """SPEC §4 admin API, in memory. `get_barrier=N`: the first N GETs of one resource wait
    for each other (N writers read the same version, so all but one PUT get 412).
    `put_delay`: seconds each PUT of one resource waits before it is handled.
    `always_412`: every conditional PUT fails with 412."""

    def __init__(self, resources: list[dict] | None = None, get_barrier: int = 0,
                 put_delay: float = 0.0, always_412: bool = False):
        self.lock = threading.Lock()
        self.resources: dict[tuple, dict] = {}
        for r in resources or []:
            self.resources[_key(r)] = json.loads(json.dumps(r))
        self.version = 1
        self.history = [{"version": 1, "time": self._now(), "cause": "initial configuration", "changed": [],
                         "snapshot": {k: json.loads(json.dumps(v)) for k, v in self.resources.items()}}]
        self.requests: list[Req] = []
        self.conflicts = 0
        self.put_delay = put_delay
        self.always_412 = always_412
        self._barrier = threading.Barrier(get_barrier) if get_barrier else None
        self._barrier_left = get_barrier
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                u = urllib.parse.urlsplit(self.path)
                req = Req(self.command, u.path, u.query,
                          {k.lower(): v for k, v in self.headers.items()}, body)
                with fake.lock:
                    fake.requests.append(req)
                status, headers, out = fake.handle(req)
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(out)
                self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _now():
        return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- helpers for tests
    def requests_of(self, method, path_prefix=""):
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def resource(self, plural, ns, name):
        return self.resources.get((plural, ns, name))

    # -- replies
    def _reply(self, status, obj, req=None, etag=True):
        headers = []
        if etag:
            headers.append(("ETag", f'"{self.version}"'))
        if req is not None and "yaml" in req.headers.get("accept", "") and status == 200:
            headers.append(("Content-Type", "application/yaml"))
            return status, headers, harness.to_yaml(obj).encode()
        headers.append(("Content-Type", "application/json"))
        return status, headers, json.dumps(obj).encode()

    def _error(self, status, message):
        return self._reply(status, {"error": message}, etag=False)

    def _commit(self, cause: str, changed: list[str]):
        self.version += 1
        self.history.append({"version": self.version, "time": self._now(), "cause": cause, "changed": changed,
                             "snapshot": {k: json.loads(json.dumps(v)) for k, v in self.resources.items()}})
        self.history = self.history[-20:]

    def _served(self, r: dict) -> dict:
        """A resource as a kubectl-like server would hand it out: server-set metadata added."""
        r = json.loads(json.dumps(r))
        meta = r.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta["uid"] = "4f1c2b8e-0000-4000-8000-%012d" % self.version
        meta["resourceVersion"] = str(self.version)
        meta["generation"] = self.version
        meta["creationTimestamp"] = "2024-05-01T10:00:00Z"
        meta["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
        meta["managedFields"] = [{"manager": "kubectl", "operation": "Update"}]
        r["status"] = {}
        return r

    def validate(self, resources: dict) -> list[dict]:
        """A few of Remora's rules, with its messages and field paths."""
        errors = []
        gateways = {(ns, n) for (p, ns, n) in resources if p == "gateways"}
        subsets = {}
        for (p, ns, n), r in resources.items():
            if p == "destinationrules":
                host = (r.get("spec") or {}).get("host", "")
                subsets.setdefault(host, set()).update(s.get("name") for s in (r["spec"].get("subsets") or []))
        for (p, ns, n), r in resources.items():
            if p != "virtualservices":
                continue
            res = _desc(p, ns, n)
            spec = r.get("spec") or {}
            if not spec.get("hosts"):
                errors.append({"resource": res, "path": "spec.hosts", "message": "at least one host is required"})
            for i, g in enumerate(spec.get("gateways") or []):
                if g == "mesh":
                    continue
                full = g if "/" in g else f"{ns}/{g}"
                if tuple(full.split("/", 1)) not in gateways:
                    errors.append({"resource": res, "path": f"spec.gateways[{i}]",
                                   "message": f'gateway "{full}" is not defined by any Gateway'})
            for i, rule in enumerate(spec.get("http") or []):
                for j, m in enumerate(rule.get("match") or []):
                    for h, sm in (m.get("headers") or {}).items():
                        if "regex" in sm:
                            try:
                                re.compile(sm["regex"])
                            except re.error as e:
                                errors.append({"resource": res, "path": f"spec.http[{i}].match[{j}].headers.{h}.regex",
                                               "message": f"invalid RE2 regular expression: {e}"})
                for j, rd in enumerate(rule.get("route") or []):
                    d = rd.get("destination") or {}
                    path = f"spec.http[{i}].route[{j}].destination"
                    host = d.get("host", "")
                    if not host or "_" in host:
                        errors.append({"resource": res, "path": path + ".host", "message": f'invalid host "{host}"'})
                    if d.get("subset") and d["subset"] not in subsets.get(host, set()):
                        errors.append({"resource": res, "path": path + ".subset",
                                       "message": f'subset "{d["subset"]}" is not defined by any DestinationRule for host "{host}"'})
        return errors

    # -- the API
    def handle(self, req: Req):
        parts = [urllib.parse.unquote(p) for p in req.path.strip("/").split("/") if p]
        q = urllib.parse.parse_qs(req.query)
        dry = q.get("dryRun", ["false"])[0] == "true"
        if req.method == "GET" and parts == ["ready"]:
            return 200, [], b"LIVE"
        if req.method == "POST" and parts == ["routes", "explain"]:
            return self.explain(req)
        if not parts or parts[0] != "config":
            return self._error(404, f"no such path {req.path}")
        rest = parts[1:]

        if rest == ["history"] and req.method == "GET":
            with self.lock:
                return self._reply(200, {"version": self.version, "history": [
                    {k: v for k, v in h.items() if k != "snapshot"} for h in self.history]}, req)
        if rest == ["rollback"] and req.method == "POST":
            with self.lock:
                to = int(q["to"][0]) if "to" in q else self.version - 1
                old = [h for h in self.history if h["version"] == to]
                if not old:
                    return self._error(404, f"version {to} is not kept")
                new = {k: json.loads(json.dumps(v)) for k, v in old[0]["snapshot"].items()}
                changed = _changes(self.resources, new)
                self.resources = new
                self._commit(f"rollback to version {to}", changed)
                return self._reply(200, {"version": self.version, "changed": changed, "rolledBackTo": to})
        if not rest:
            with self.lock:
                if req.method == "GET":
                    return self._reply(200, {"version": self.version,
                                             "items": [self._served(r) for r in self.resources.values()]}, req)
                if req.method == "PUT":
                    if "json" not in req.headers.get("content-type", ""):
                        return self._error(415, "the fake reads JSON only")
                    doc = json.loads(req.body)
                    items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else doc
                    items = items if isinstance(items, list) else [items]
                    new = {_key(r): r for r in items}
                    errors = self.validate(new)
                    if errors:
                        return self._reply(400, {"errors": errors}, etag=False)
                    changed = _changes(self.resources, new)
                    if not dry and changed:
                        self.resources = new
                        self._commit("PUT /config", changed)
                    return self._reply(200, {"version": self.version, "changed": changed})
            return self._error(405, "method not allowed")

        plural = rest[0]
        if plural not in KINDS:
            return self._error(404, f"unknown kind {plural}")
        if len(rest) == 1 and req.method == "GET":
            with self.lock:
                return self._reply(200, {"version": self.version, "items": [
                    self._served(r) for k, r in self.resources.items() if k[0] == plural]}, req)
        if len(rest) != 3:
            return self._error(404, f"no such path {req.path}")
        key = (plural, rest[1], rest[2])

        if req.method == "GET":
            take = False
            with self.lock:
                if self._barrier_left > 0:
                    self._barrier_left -= 1
                    take = True
            if take:
                try:
                    self._barrier.wait(timeout=10)
                except threading.BrokenBarrierError:
                    pass
            with self.lock:
                r = self.resources.get(key)
                if r is None:
                    return self._error(404, f"{_desc(*key)} not found")
                return self._reply(200, self._served(r), req)

        if req.method in ("PUT", "DELETE"):
            if req.method == "PUT" and self.put_delay:
                time.sleep(self.put_delay)
            with self.lock:
                im = req.headers.get("if-match")
                if im is not None and (self.always_412 or im.strip() != f'"{self.version}"'):
                    self.conflicts += 1
                    return self._error(412, f"version is {self.version}, not {im}")
                new = dict(self.resources)
                if req.method == "DELETE":
                    if key not in new:
                        return self._error(404, f"{_desc(*key)} not found")
                    del new[key]
                else:
                    try:
                        doc = json.loads(req.body)
                    except ValueError as e:
                        return self._reply(400, {"errors": [{"resource": _desc(*key), "path": "",
                                                             "message": f"not JSON: {e}"}]}, etag=False)
                    if _key(doc) != key:
                        return self._reply(400, {"errors": [{"resource": _desc(*key), "path": "metadata",
                                                             "message": f"body is {_desc(*_key(doc))}"}]}, etag=False)
                    new[key] = doc
                errors = self.validate(new)
                if errors:
                    return self._reply(400, {"errors": errors}, etag=False)
                changed = _changes(self.resources, new)
                if not dry and changed:
                    self.resources = new
                    self._commit(f"{req.method} {req.path}", changed)
                return self._reply(200, {"version": self.version, "changed": changed})
        return self._error(405, "method not allowed")

    def explain(self, req: Req):
        """Rule-by-rule scan of the VirtualServices whose hosts hold the authority: exact/prefix
        header matches, exact cookies, uri prefix. The reply has the shape of RemoraAdmin's:
        {matched, virtualService, rule, destinations, rules: [{virtualService, rule, index,
        matched, reasons, definition (the matched rule only)}], outcome}."""
        body = json.loads(req.body)
        authority = body.get("authority", "").split(":")[0].lower()
        headers = {k.lower(): v for k, v in (body.get("headers") or {}).items()}
        cookies = {}
        for part in headers.get("cookie", "").split(";"):
            if "=" in part:
                k, v = part.strip().split("=", 1)
                cookies[k] = v
        rules, chosen = [], None
        with self.lock:
            for (p, ns, n), vs in self.resources.items():
                if p != "virtualservices" or authority not in [h.lower() for h in vs["spec"].get("hosts", [])]:
                    continue
                for i, rule in enumerate(vs["spec"].get("http") or []):
                    reasons = []
                    for m in rule.get("match") or [{}]:
                        why = None
                        for h, sm in (m.get("headers") or {}).items():
                            got = headers.get(h.lower())
                            if "exact" in sm and got != sm["exact"]:
                                why = f'header {h}: {got!r} is not exactly {sm["exact"]!r}'
                            elif "prefix" in sm and not (got or "").startswith(sm["prefix"]):
                                why = f'header {h}: {got!r} does not start with {sm["prefix"]!r}'
                        for c, sm in (m.get("cookies") or {}).items():
                            if cookies.get(c) != sm.get("exact"):
                                why = f'cookie {c}: {cookies.get(c)!r} is not exactly {sm.get("exact")!r}'
                        uri = m.get("uri") or {}
                        if "prefix" in uri and not body.get("path", "/").startswith(uri["prefix"]):
                            why = f'uri: does not start with {uri["prefix"]!r}'
                        if why is None:
                            reasons = []
                            break
                        reasons.append(why)
                    step = {"virtualService": f"{ns}/{n}", "rule": f"{ns}/{n}#{rule.get('name') or i}", "index": i,
                            "matched": not reasons, "reasons": reasons}
                    if not reasons:
                        step["definition"] = rule
                        chosen = (step, rule)
                    rules.append(step)
                    if not reasons:
                        break
                if rules:
                    break
        dests = []
        if chosen:
            for rd in chosen[1].get("route") or []:
                d = rd.get("destination", {})
                port = (d.get("port") or {}).get("number", 80)
                dests.append({"host": d["host"], "port": port, "subset": d.get("subset"),
                              "weight": rd.get("weight", 100),
                              "cluster": f"outbound|{port}|{d.get('subset') or ''}|{d['host']}"})
        outcome = ("route to " + ", ".join(d["cluster"] for d in dests) if chosen else
                   "no rule matched: 404 NR" if rules else
                   f'no VirtualService on listener {body.get("listener")} has a host matching "{authority}": 404 NR')
        return self._reply(200, {"listener": {"name": str(body.get("listener"))}, "request": body,
                                 "matched": chosen is not None,
                                 "virtualService": chosen[0]["virtualService"] if chosen else None,
                                 "rule": chosen[0]["rule"] if chosen else None,
                                 "action": "route" if chosen else None,
                                 "destinations": dests, "rules": rules, "outcome": outcome})


# ---------------------------------------------------------------------------
# talking to an admin API from the tests (seeding and checking)

class AdminAPI:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, obj=None, headers: dict | None = None):
        data = json.dumps(obj).encode() if obj is not None else None
        hs = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            hs["Content-Type"] = "application/json"
        rq = urllib.request.Request(self.url + path, data=data, method=method, headers=hs)
        try:
            with urllib.request.urlopen(rq, timeout=15) as resp:
                raw = resp.read()
                return resp.status, dict(resp.headers), json.loads(raw) if raw.strip().startswith((b"{", b"[")) else raw
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
            return e.code, dict(e.headers), body

    def put(self, obj: dict):
        plural, ns, name = _key(obj)
        st, _, body = self.call("PUT", f"/config/{plural}/{ns}/{name}", obj)
        assert st == 200, f"seeding {_desc(plural, ns, name)}: {st} {body}"
        return body

    def get(self, plural, ns, name):
        st, hs, body = self.call("GET", f"/config/{plural}/{ns}/{name}")
        if st == 404:
            return None
        assert st == 200, f"GET {plural}/{ns}/{name}: {st} {body}"
        # the resource itself, or wrapped
        if isinstance(body, dict) and "kind" not in body:
            for k in ("resource", "item", "object"):
                if isinstance(body.get(k), dict):
                    return body[k]
        return body

    def vs_rules(self, ns, name) -> list[dict]:
        vs = self.get("virtualservices", ns, name)
        assert vs is not None, f"VirtualService {ns}/{name} is gone"
        return vs["spec"].get("http") or []

    def version(self) -> int:
        st, hs, body = self.call("GET", "/config")
        assert st == 200
        if isinstance(body, dict) and isinstance(body.get("version"), int):
            return body["version"]
        etag = {k.lower(): v for k, v in hs.items()}.get("etag", "")
        return int(etag.strip('W/"'))


class Admin:
    """What a test needs from either admin server."""

    def __init__(self, url: str, fake: FakeAdmin | None = None, mesh_listener: str = "outbound"):
        self.url = url
        self.fake = fake
        self.api = AdminAPI(url)
        # How `explain --listener` names the mesh outbound listener. The fake takes anything;
        # RemoraAdmin takes a port, a listener name ("127.0.0.1_15001"), "outbound" or a Gateway.
        self.mesh_listener = mesh_listener


_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def vs_doc(name: str, rules: list[dict], ns: str = "default", host: str | None = None, **meta) -> dict:
    return {"apiVersion": API, "kind": "VirtualService",
            "metadata": {"name": name, "namespace": ns, **meta},
            "spec": {"hosts": [host or f"{name}.test"], "http": rules}}


def header_rule(value: str, dest: str, name: str | None = None, header: str = "userid") -> dict:
    r = {"match": [{"headers": {header: {"exact": value}}}], "route": [{"destination": {"host": dest}}]}
    return {"name": name, **r} if name else r


def default_rule(dest: str = "adservice") -> dict:
    return {"route": [{"destination": {"host": dest}}]}


def dr_doc(name: str, host: str, subsets=("v1", "v2"), ns: str = "default") -> dict:
    return {"apiVersion": API, "kind": "DestinationRule", "metadata": {"name": name, "namespace": ns},
            "spec": {"host": host, "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}}


# ---------------------------------------------------------------------------
# fixtures

def _real_resources(ports: dict) -> list[dict]:
    docs = [harness.proxy_resource(ports["listen"], ports["admin"], ports["health"], ports["metrics"])]
    for i, h in enumerate(DEST_HOSTS):
        docs.append({"apiVersion": API, "kind": "ServiceEntry", "metadata": {"name": f"se-{h}", "namespace": "default"},
                     "spec": {"hosts": [h], "resolution": "STATIC",
                              "ports": [{"number": 8080 if h == "adservice-myfeature" else 80,
                                         "name": "http", "protocol": "HTTP"}],
                              "endpoints": [{"address": "127.0.0.1", "labels": {"version": "v2"}}]}})
    docs.append(dr_doc("adservice-myfeature", "adservice-myfeature"))
    return docs


@pytest.fixture(scope="module")
def real_admin(module_env):
    ports = {k: free_port() for k in ("listen", "admin", "health", "metrics")}
    cfg = module_env.write(_real_resources(ports), f"ctl-real-{ports['listen']}.yaml")
    try:
        proxy = module_env.run_proxy([cfg], ports, "remora-ctl-real")
    except RuntimeError as e:
        if "Unknown option '-c'" in str(e) or "Unexpected argument 'run'" in str(e):
            pytest.skip("this remora binary has no `run` (a ctl-only build)")
        raise
    url = f"http://127.0.0.1:{ports['admin']}"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/ready", timeout=1) as r:
                if r.status == 200:
                    break
        except (OSError, urllib.error.URLError):
            pass
        if not proxy.proc.alive():
            pytest.skip("remora run exited; see its log")
        time.sleep(0.1)
    else:
        pytest.skip(f"remora run does not serve the admin API yet (nothing answered GET {url}/ready)")
    return Admin(url, None, mesh_listener=str(ports["listen"]))


@pytest.fixture(params=["fake", "real"])
def admin(request, remora_bin):
    if request.param == "real":
        yield request.getfixturevalue("real_admin")
        return
    fake = FakeAdmin([dr_doc("adservice-myfeature", "adservice-myfeature")])
    try:
        yield Admin(fake.url, fake)
    finally:
        fake.stop()


@pytest.fixture
def fake(remora_bin):
    f = FakeAdmin()
    try:
        yield f
    finally:
        f.stop()


def ctl(bin_path, url, *args, input: str | None = None, env=None, timeout: float = 60):
    return subprocess.run([str(bin_path), "ctl", "--admin", url, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL, env=env)


def show(r) -> str:
    return f"rc={r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


# ---------------------------------------------------------------------------
# route set / unset (SPEC §4.4)

def test_route_set_writes_back_exactly_the_runbook_edit(remora_bin, fake):
    vs = vs_doc("adservice", [
        header_rule("alice", "adservice-old"),                                   # alice: replaced
        header_rule("bob", "adservice-bob", name="feature-userid-bob"),         # bob: kept
        {"match": [{"headers": {"userid": {"exact": "alice"}}, "uri": {"prefix": "/api"}}],
         "route": [{"destination": {"host": "adservice-alice"}}]},             # more than userid: kept
        {"name": "older", "match": [{"name": "m", "headers": {"UserID": {"exact": "alice"}}}],
         "route": [{"destination": {"host": "adservice-old"}}]},               # alice again: replaced
        header_rule("alice2", "adservice-alice"),                                # another value: kept
        default_rule(),
    ], host="adservice", labels={"app": "adservice"})
    fake.resources[_key(vs)] = vs
    fake.resources[_key(dr_doc("adservice-myfeature", "adservice-myfeature"))] = dr_doc("adservice-myfeature", "adservice-myfeature")
    before = fake.version
    r = ctl(remora_bin, fake.url, "route", "set", "--virtual-service", "default/adservice",
            "--header", "userid=alice", "--destination", "adservice-myfeature:8080/v2")
    assert r.returncode == 0, show(r)
    puts = fake.requests_of("PUT")
    assert len(puts) == 1, puts
    put = puts[0]
    assert put.path == "/config/virtualservices/default/adservice"
    assert put.headers.get("if-match") == f'"{before}"', put.headers
    assert put.headers.get("content-type", "").startswith("application/json")
    body = put.json()
    expected = {
        "apiVersion": API, "kind": "VirtualService",
        "metadata": {"name": "adservice", "namespace": "default", "labels": {"app": "adservice"}},
        "spec": {"hosts": ["adservice"], "http": [
            {"name": "feature-userid-alice",
             "match": [{"headers": {"userid": {"exact": "alice"}}}],
             "route": [{"destination": {"host": "adservice-myfeature", "port": {"number": 8080}, "subset": "v2"}}]},
            vs["spec"]["http"][1], vs["spec"]["http"][2], vs["spec"]["http"][4], vs["spec"]["http"][5],
        ]},
    }
    assert body == expected, json.dumps(body, indent=1)
    assert list(body["spec"]["http"][0]) == ["name", "match", "route"]
    assert "status" not in body and "version" not in body
    assert r.stdout.splitlines() == [
        'removed rule #0: header userid=alice -> adservice-old',
        'removed rule #3 "older": header userid=alice -> adservice-old',
        'added rule #0 "feature-userid-alice": header userid=alice -> adservice-myfeature:8080/v2',
        f'VirtualService default/adservice: version {before + 1} (was {before})',
    ], show(r)
    assert r.stderr == ""


def test_route_set_replace_and_unset(remora_bin, admin):
    name = unique("ads")
    admin.api.put(vs_doc(name, [header_rule("carol", "adservice-alice"), default_rule()]))
    vsname = f"default/{name}"

    r = ctl(remora_bin, admin.url, "route", "set", "--virtual-service", vsname, "--header", "userid=alice",
            "--destination", "adservice-myfeature")
    assert r.returncode == 0, show(r)
    assert "added rule #0 \"feature-userid-alice\": header userid=alice -> adservice-myfeature" in r.stdout
    rules = admin.api.vs_rules("default", name)
    assert rules[0] == {"name": "feature-userid-alice", "match": [{"headers": {"userid": {"exact": "alice"}}}],
                        "route": [{"destination": {"host": "adservice-myfeature"}}]}, rules
    assert len(rules) == 3

    # again, to another branch: still one rule for alice, first
    r = ctl(remora_bin, admin.url, "route", "set", "--virtual-service", vsname, "--header", "userid=alice",
            "--destination", "adservice-myfeature:8080/v1")
    assert r.returncode == 0, show(r)
    assert 'removed rule #0 "feature-userid-alice": header userid=alice -> adservice-myfeature' in r.stdout, show(r)
    rules = admin.api.vs_rules("default", name)
    assert len(rules) == 3 and rules[0]["route"][0]["destination"] == {
        "host": "adservice-myfeature", "port": {"number": 8080}, "subset": "v1"}, rules

    # bob goes first, alice stays
    r = ctl(remora_bin, admin.url, "route", "set", "--virtual-service", vsname, "--header", "userid=bob",
            "--destination", "adservice-bob")
    assert r.returncode == 0, show(r)
    rules = admin.api.vs_rules("default", name)
    assert [x.get("name") for x in rules[:2]] == ["feature-userid-bob", "feature-userid-alice"], rules

    # unset alice: bob, carol's hand-written rule and the default stay, in order
    r = ctl(remora_bin, admin.url, "route", "unset", "--virtual-service", vsname, "--header", "userid=alice")
    assert r.returncode == 0, show(r)
    assert 'removed rule #1 "feature-userid-alice"' in r.stdout, show(r)
    rules = admin.api.vs_rules("default", name)
    assert rules == [header_rule("bob", "adservice-bob", name="feature-userid-bob"),
                     header_rule("carol", "adservice-alice"), default_rule()], rules

    # unset again: idempotent
    v = admin.api.version()
    r = ctl(remora_bin, admin.url, "route", "unset", "--virtual-service", vsname, "--header", "userid=alice")
    assert r.returncode == 0, show(r)
    assert r.stdout.startswith(f"no rule for header userid=alice in VirtualService {vsname}"), show(r)
    assert admin.api.version() == v


def test_route_set_same_rule_twice_is_unchanged(remora_bin, admin):
    name = unique("ads")
    admin.api.put(vs_doc(name, [default_rule()]))
    args = ["route", "set", "--virtual-service", name, "--header", "userid=dave", "--destination", "adservice-bob"]
    assert ctl(remora_bin, admin.url, *args).returncode == 0
    v = admin.api.version()
    r = ctl(remora_bin, admin.url, *args)
    assert r.returncode == 0, show(r)
    assert r.stdout.startswith('unchanged: rule #0 "feature-userid-dave"'), show(r)
    assert admin.api.version() == v
    if admin.fake:
        assert len(admin.fake.requests_of("PUT", f"/config/virtualservices/default/{name}")) == 2  # seed + first set


def test_route_set_cookie(remora_bin, admin):
    """--cookie writes the `cookies` extension; it replaces an earlier rule for the same session,
    also one written the Istio way (`Cookie` header exactly NAME=VALUE, the walkthrough's form),
    and leaves the readiness probe's session alone."""
    name = unique("frontend")
    sid = "4f9e715d-fe56-4a1e-964b-b00b607e7695"
    admin.api.put(vs_doc(name, [
        {"match": [{"headers": {"Cookie": {"exact": f"shop_session-id={sid}"}}}],
         "route": [{"destination": {"host": "frontend-myfeature"}}]},
        {"match": [{"cookies": {"shop_session-id": {"exact": "x-readiness-probe"}}}],
         "route": [{"destination": {"host": "frontend"}}]},
        default_rule("frontend"),
    ]))
    r = ctl(remora_bin, admin.url, "route", "set", "--virtual-service", f"default/{name}",
            "--cookie", f"shop_session-id={sid}", "--destination", "branch-1")
    assert r.returncode == 0, show(r)
    rules = admin.api.vs_rules("default", name)
    assert rules[0] == {"name": f"feature-shop-session-id-{sid}",
                        "match": [{"cookies": {"shop_session-id": {"exact": sid}}}],
                        "route": [{"destination": {"host": "branch-1"}}]}, rules
    assert len(rules) == 3, rules
    assert rules[1]["match"][0]["cookies"]["shop_session-id"]["exact"] == "x-readiness-probe"
    assert f"removed rule #0: cookie shop_session-id={sid} -> frontend-myfeature" in r.stdout, show(r)

    r = ctl(remora_bin, admin.url, "route", "unset", "--virtual-service", f"default/{name}",
            "--cookie", f"shop_session-id={sid}")
    assert r.returncode == 0, show(r)
    assert len(admin.api.vs_rules("default", name)) == 2


def test_route_set_two_users_at_once_both_land(remora_bin):
    """Two `route set`s read the same version (the fake holds both GETs until both arrived):
    one PUT wins, the other gets 412, reads again and writes its rule on top."""
    fake = FakeAdmin([vs_doc("adservice", [header_rule("zed", "adservice-old"), default_rule()], host="adservice")],
                     get_barrier=2, put_delay=0.05)
    try:
        procs = [subprocess.Popen([str(remora_bin), "ctl", "--admin", fake.url, "route", "set",
                                   "--virtual-service", "default/adservice", "--header", f"userid={u}",
                                   "--destination", f"adservice-{u}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
                 for u in ("alice", "bob")]
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, f"rc={p.returncode}\n{out}\n{err}"
        rules = fake.resource("virtualservices", "default", "adservice")["spec"]["http"]
        names = [x.get("name") for x in rules]
        assert sorted(names[:2]) == ["feature-userid-alice", "feature-userid-bob"], names
        assert rules[2:] == [header_rule("zed", "adservice-old"), default_rule()], rules
        assert fake.conflicts >= 1
        stderr = "".join(e for _, e in outs)
        assert "(HTTP 412); reading it again (retry 1/10)" in stderr, stderr
        assert fake.version == 3  # exactly two changes
    finally:
        fake.stop()


def test_route_set_many_users_at_once_none_lost(remora_bin, admin):
    name = unique("ads")
    admin.api.put(vs_doc(name, [default_rule()]))
    if admin.fake:
        admin.fake.put_delay = 0.03
    users = [f"user{i}" for i in range(5)]
    procs = [subprocess.Popen([str(remora_bin), "ctl", "--admin", admin.url, "route", "set",
                               "--virtual-service", f"default/{name}", "--header", f"userid={u}",
                               "--destination", f"branch-{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
             for i, u in enumerate(users)]
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, f"rc={p.returncode}\n{out}\n{err}"
    rules = admin.api.vs_rules("default", name)
    assert sorted(x.get("name") for x in rules[:-1]) == [f"feature-userid-{u}" for u in users], rules
    assert rules[-1] == default_rule()


def test_route_gives_up_after_ten_conflicts(remora_bin, fake):
    fake.resources[("virtualservices", "default", "adservice")] = vs_doc("adservice", [default_rule()], host="adservice")
    fake.always_412 = True
    t0 = time.monotonic()
    r = ctl(remora_bin, fake.url, "route", "set", "--virtual-service", "adservice", "--header", "userid=a",
            "--destination", "adservice-bob")
    assert r.returncode == 1, show(r)
    assert len(fake.requests_of("PUT")) == 11, fake.requests
    assert "(retry 10/10)" in r.stderr and "giving up" in r.stderr.splitlines()[-1], show(r)
    assert time.monotonic() - t0 < 15  # 10 backoffs of at most 0.3 s each


def test_route_errors(remora_bin, admin):
    name = unique("ads")
    admin.api.put(vs_doc(name, [default_rule()]))
    # the VirtualService does not exist: exit 1, named
    r = ctl(remora_bin, admin.url, "route", "set", "--virtual-service", "default/nope-nothing", "--header", "userid=a",
            "--destination", "adservice")
    assert r.returncode == 1, show(r)
    assert "VirtualService default/nope-nothing not found" in r.stderr
    # usage errors: exit 2, nothing sent
    for args in (["--header", "userid=a", "--cookie", "s=a", "--destination", "x"],
                 ["--destination", "x"],
                 ["--header", "userid", "--destination", "x"],
                 ["--header", "userid=a", "--destination", "x:notaport"],
                 ["--header", "bad name=a", "--destination", "x"]):
        r = ctl(remora_bin, admin.url, "route", "set", "--virtual-service", name, *args)
        assert r.returncode == 2, f"{args}: {show(r)}"
        assert r.stderr.strip(), args
    # the server refuses the edit (a subset no DestinationRule defines): exit 1, the error named
    r = ctl(remora_bin, admin.url, "route", "set", "--virtual-service", name, "--header", "userid=a",
            "--destination", "adservice/ghost")
    assert r.returncode == 1, show(r)
    assert f"VirtualService default/{name}" in r.stderr and "spec.http[0].route[0].destination.subset" in r.stderr, show(r)
    assert admin.api.vs_rules("default", name) == [default_rule()]


# ---------------------------------------------------------------------------
# apply / get / delete

def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_apply_get_delete(remora_bin, admin, tmp_path):
    name = unique("reviews")
    vs = vs_doc(name, [{"match": [{"headers": {"end-user": {"exact": "jason"}}}],
                        "route": [{"destination": {"host": "adservice-myfeature", "subset": "v2"}}]},
                       default_rule()])
    dr = dr_doc(name, "adservice-myfeature")
    # the VirtualService needs the DestinationRule's subset: it comes first in the file, and
    # apply still PUTs the DestinationRule first
    f = _write(tmp_path, "app.yaml", harness.documents_yaml([vs, dr]))
    r = ctl(remora_bin, admin.url, "apply", "-f", f)
    assert r.returncode == 0, show(r)
    lines = r.stdout.splitlines()
    assert len(lines) == 2, show(r)
    assert re.fullmatch(rf"DestinationRule default/{name}: applied, version \d+, changed: DestinationRule default/{name} created",
                        lines[0]), lines
    assert re.fullmatch(rf"VirtualService default/{name}: applied, version \d+, changed: VirtualService default/{name} created",
                        lines[1]), lines
    got = admin.api.get("virtualservices", "default", name)
    assert got["spec"]["http"] == vs["spec"]["http"]
    if admin.fake:
        assert [q.path for q in admin.fake.requests_of("PUT")] == [
            f"/config/destinationrules/default/{name}", f"/config/virtualservices/default/{name}"]

    # get: one resource (JSON, indented), one kind, everything; YAML on request
    r = ctl(remora_bin, admin.url, "get", "vs", f"default/{name}")
    assert r.returncode == 0, show(r)
    body = json.loads(r.stdout)
    body = body.get("resource", body) if "kind" not in body else body
    assert body["spec"]["http"] == vs["spec"]["http"]
    assert "\n  " in r.stdout  # indented
    r = ctl(remora_bin, admin.url, "get", "virtualservices")
    assert r.returncode == 0 and f'"{name}"' in r.stdout, show(r)
    r = ctl(remora_bin, admin.url, "get")
    assert r.returncode == 0 and f'"{name}"' in r.stdout, show(r)
    r = ctl(remora_bin, admin.url, "get", "VirtualService", name, "-o", "yaml")
    assert r.returncode == 0, show(r)
    assert re.search(r"^\s*kind: \"?VirtualService\"?$", r.stdout, re.M), show(r)
    if admin.fake:
        assert admin.fake.requests[-1].headers.get("accept") == "application/yaml"

    # apply again: nothing changes (the fake says so; the real server may or may not count it)
    r = ctl(remora_bin, admin.url, "apply", "-f", f)
    assert r.returncode == 0, show(r)
    if admin.fake:
        assert r.stdout.splitlines()[1].endswith(", unchanged"), show(r)

    # delete, both spellings; a second delete is 404: exit 1
    r = ctl(remora_bin, admin.url, "delete", "vs", f"default/{name}")
    assert r.returncode == 0, show(r)
    assert re.fullmatch(rf"VirtualService default/{name}: deleted, version \d+, changed: VirtualService default/{name} deleted",
                        r.stdout.strip()), show(r)
    assert admin.api.get("virtualservices", "default", name) is None
    r = ctl(remora_bin, admin.url, "delete", f"destinationrules/default/{name}")
    assert r.returncode == 0, show(r)
    r = ctl(remora_bin, admin.url, "delete", "vs", f"default/{name}")
    assert r.returncode == 1, show(r)
    assert f"VirtualService default/{name}: DELETE /config/virtualservices/default/{name}: 404" in r.stderr, show(r)
    r = ctl(remora_bin, admin.url, "get", "vs", f"default/{name}")
    assert r.returncode == 1 and ": 404" in r.stderr, show(r)


def test_apply_dry_run_changes_nothing(remora_bin, admin, tmp_path):
    name = unique("dry")
    f = _write(tmp_path, "vs.json", json.dumps(vs_doc(name, [default_rule()]), indent=2))
    v = admin.api.version()
    r = ctl(remora_bin, admin.url, "apply", "--dry-run", "-f", f)
    assert r.returncode == 0, show(r)
    assert r.stdout.startswith(f"VirtualService default/{name}: valid") and r.stdout.rstrip().endswith(
        "(dry run, nothing applied)"), show(r)
    assert admin.api.get("virtualservices", "default", name) is None
    assert admin.api.version() == v
    if admin.fake:
        assert admin.fake.requests_of("PUT")[-1].query == "dryRun=true"


def test_apply_server_errors_listed_exit_1(remora_bin, admin, tmp_path):
    """Errors only the server can find (references to other resources): every one printed, one
    line each, naming the file, the resource and the field path; nothing applied."""
    name = unique("bad")
    vs = vs_doc(name, [{"route": [{"destination": {"host": "adservice", "subset": "ghost"}}]}])
    vs["spec"]["gateways"] = ["istio-system/no-such-gateway"]
    good = unique("good")
    f = _write(tmp_path, "two.yaml", harness.documents_yaml([vs, vs_doc(good, [default_rule()])]))
    r = ctl(remora_bin, admin.url, "apply", "-f", f)
    assert r.returncode == 1, show(r)
    errs = [ln for ln in r.stderr.splitlines() if ln.strip()]
    gw = [ln for ln in errs if "spec.gateways[0]" in ln]
    sub = [ln for ln in errs if "spec.http[0].route[0].destination.subset" in ln]
    assert gw and sub, show(r)
    for ln in gw + sub:
        assert ln.startswith(f"{f}: VirtualService default/{name}: "), ln
    assert admin.api.get("virtualservices", "default", name) is None
    # the other resource of the file was still applied and reported
    assert f"VirtualService default/{good}: applied" in r.stdout, show(r)


def test_apply_local_errors_and_files(remora_bin, admin, tmp_path):
    v = admin.api.version()
    n0 = len(admin.fake.requests) if admin.fake else 0
    # unreadable file: 3
    r = ctl(remora_bin, admin.url, "apply", "-f", tmp_path / "missing.yaml")
    assert r.returncode == 3, show(r)
    assert "missing.yaml" in r.stderr
    # invalid resources: 1, every error with file and field path, nothing sent
    bad = _write(tmp_path, "bad.yaml", harness.documents_yaml([
        vs_doc("r1", [{"match": [{"headers": {"userid": {"regex": "(unclosed"}}}], "route": [{"destination": {"host": "a"}}]}]),
        {"apiVersion": API, "kind": "Frobnicator", "metadata": {"name": "x"}, "spec": {}},
    ]))
    r = ctl(remora_bin, admin.url, "apply", "-f", bad)
    assert r.returncode == 1, show(r)
    assert any("spec.http[0].match[0].headers.userid.regex" in ln and str(bad) in ln for ln in r.stderr.splitlines()), show(r)
    assert "Frobnicator" in r.stderr
    assert admin.api.version() == v
    if admin.fake:
        assert len([q for q in admin.fake.requests[n0:] if q.method != "GET"]) == 0
    # stdin
    name = unique("stdin")
    r = ctl(remora_bin, admin.url, "apply", "-f", "-", input=json.dumps(vs_doc(name, [default_rule()])))
    assert r.returncode == 0, show(r)
    assert admin.api.get("virtualservices", "default", name) is not None


def test_apply_replace_all(remora_bin, fake, tmp_path):
    fake.resources[("virtualservices", "default", "old")] = vs_doc("old", [default_rule()])
    lst = {"apiVersion": "v1", "kind": "List", "items": [vs_doc("new", [default_rule()])]}
    f = _write(tmp_path, "all.json", json.dumps(lst))
    r = ctl(remora_bin, fake.url, "apply", "--replace-all", "-f", f)
    assert r.returncode == 0, show(r)
    put = fake.requests_of("PUT")[-1]
    assert put.path == "/config" and put.headers["content-type"] == "application/json"
    assert put.json() == lst
    assert r.stdout.strip() == ("configuration: replaced, version 2, changed: "
                                "VirtualService default/new created, VirtualService default/old deleted"), show(r)
    assert set(fake.resources) == {("virtualservices", "default", "new")}


# ---------------------------------------------------------------------------
# history, rollback

def test_history_and_rollback(remora_bin, admin):
    name = unique("hist")
    admin.api.put(vs_doc(name, [default_rule("adservice")]))
    v1 = admin.api.version()
    admin.api.put(vs_doc(name, [default_rule("adservice-old")]))
    v2 = admin.api.version()
    assert v2 == v1 + 1

    r = ctl(remora_bin, admin.url, "history")
    assert r.returncode == 0, show(r)
    lines = r.stdout.splitlines()
    assert re.match(r"VERSION\s+TIME\s+CAUSE\s+CHANGED$", lines[0]), show(r)
    rows = {ln.split()[0]: ln for ln in lines[1:]}
    assert f"{v2}*" in rows, show(r)  # the version in force is starred
    assert re.search(rf"PUT /config/virtualservices/default/{name}\s+VirtualService default/{name} updated$",
                     rows[f"{v2}*"]), show(r)
    r = ctl(remora_bin, admin.url, "history", "-o", "json")
    assert r.returncode == 0
    json.loads(r.stdout)

    r = ctl(remora_bin, admin.url, "rollback", "--to", v1)
    assert r.returncode == 0, show(r)
    assert r.stdout.strip() == (f"configuration: rolled back to version {v1}, version {v2 + 1}, "
                                f"changed: VirtualService default/{name} updated"), show(r)
    assert admin.api.vs_rules("default", name) == [default_rule("adservice")]
    if admin.fake:
        assert admin.fake.requests_of("POST")[-1].query == f"to={v1}"

    r = ctl(remora_bin, admin.url, "rollback", "--to", 999999)
    assert r.returncode == 1, show(r)
    assert "POST /config/rollback?to=999999: 404" in r.stderr or ": 400" in r.stderr, show(r)


# ---------------------------------------------------------------------------
# explain

def test_explain_table(remora_bin, admin):
    name = unique("exp")
    host = f"{name}.test"
    admin.api.put(vs_doc(name, [header_rule("alice", "adservice-alice", name="feature-userid-alice"),
                                {"match": [{"uri": {"prefix": "/api"}}], "route": [{"destination": {"host": "adservice-old"}}]},
                                default_rule("adservice")]))
    r = ctl(remora_bin, admin.url, "explain", "--listener", admin.mesh_listener, "--authority", host,
            "--path", "/home", "-H", "userid: bob", "-H", "Cookie: a=1", "-H", "cookie: b=2")
    assert r.returncode == 0, show(r)
    lines = r.stdout.splitlines()
    assert re.match(r"RULE\s+MATCHED\s+REASONS\s+DESTINATION$", lines[0]), show(r)
    assert re.match(rf"default/{name} #0 feature-userid-alice\s+no\s+.*userid.*\s+-$", lines[1]), show(r)
    assert re.match(rf"default/{name} #1\s+no\s+.*\s+-$", lines[2]), show(r)
    assert re.match(rf"default/{name} #2\s+yes\s+-\s+adservice:80$", lines[3]), show(r)
    assert lines[4] == f"=> default/{name} #2 -> adservice:80", show(r)
    if admin.fake:
        body = admin.fake.requests_of("POST", "/routes/explain")[-1].json()
        assert body == {"listener": "outbound", "authority": host, "method": "GET", "path": "/home",
                        "headers": {"userid": "bob", "cookie": "a=1; b=2"}}, body

    r = ctl(remora_bin, admin.url, "explain", "--listener", admin.mesh_listener, "--authority", host,
            "-H", "userid: alice")
    assert r.returncode == 0, show(r)
    assert r.stdout.splitlines()[-1] == f"=> default/{name} #0 feature-userid-alice -> adservice-alice:80", show(r)

    r = ctl(remora_bin, admin.url, "explain", "--listener", admin.mesh_listener, "--authority", "nothing-here.test")
    assert r.returncode == 0, show(r)
    assert r.stdout.startswith("=> no VirtualService"), show(r)

    r = ctl(remora_bin, admin.url, "explain", "--listener", admin.mesh_listener, "--authority", host, "-H", "novalue")
    assert r.returncode == 2, show(r)


# ---------------------------------------------------------------------------
# reaching the admin API

def test_unreachable_admin_exit_2(remora_bin):
    port = free_port()  # nothing listens there
    for args in (["get"], ["route", "unset", "--virtual-service", "x", "--header", "a=b"], ["history"]):
        r = subprocess.run([str(remora_bin), "ctl", "--admin", f"http://127.0.0.1:{port}", *args],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 2, f"{args}: {show(r)}"
        assert f"127.0.0.1:{port}" in r.stderr and "Connection refused" in r.stderr, show(r)
        assert len(r.stderr.strip().splitlines()) == 1


def test_not_http_and_timeout_exit_2(remora_bin):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    mode = {"v": "garbage"}

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.recv(65536)
            if mode["v"] == "garbage":
                c.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
                c.close()
            else:
                threading.Timer(5, c.close).start()  # never answers

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r = subprocess.run([str(remora_bin), "ctl", "--admin", f"127.0.0.1:{port}", "get"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 2 and "malformed reply" in r.stderr, show(r)
        mode["v"] = "silent"
        t0 = time.monotonic()
        r = subprocess.run([str(remora_bin), "ctl", "--admin", f"127.0.0.1:{port}", "--timeout", "0.5", "get"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 2 and "timed out" in r.stderr, show(r)
        assert time.monotonic() - t0 < 8  # --timeout 0.5, plus process start on a loaded machine
    finally:
        srv.close()


def test_remora_admin_environment_variable(remora_bin, fake):
    env = dict(os.environ, REMORA_ADMIN=fake.url)
    r = subprocess.run([str(remora_bin), "ctl", "get"], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL, env=env)
    assert r.returncode == 0, show(r)
    assert json.loads(r.stdout)["version"] == 1
    # --admin after the subcommand works too, and wins over the environment
    r = subprocess.run([str(remora_bin), "ctl", "history", "--admin", "http://127.0.0.1:1"], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL, env=env)
    assert r.returncode == 2 and "127.0.0.1:1" in r.stderr, show(r)


def test_feature_branch_example_runbook(remora_bin, fake):
    """The users' walkthrough (shared/examples): adservice's first rule routes one session; the
    runbook replaces it for a new session and the old one stays until unset."""
    example = pathlib.Path(harness.REPO).parent / "shared" / "examples" / "feature-branch.yaml"
    if not example.is_file():
        pytest.skip(f"{example} not found")
    r = ctl(remora_bin, fake.url, "apply", "-f", example)
    assert r.returncode == 0, show(r)
    assert "VirtualService default/adservice: applied" in r.stdout
    r = ctl(remora_bin, fake.url, "route", "set", "--virtual-service", "adservice", "--header",
            "userid=4f9e715d-fe56-4a1e-964b-b00b607e7695", "--destination", "adservice-myfeature")
    assert r.returncode == 0, show(r)
    rules = fake.resource("virtualservices", "default", "adservice")["spec"]["http"]
    assert rules == [
        {"name": "feature-userid-4f9e715d-fe56-4a1e-964b-b00b607e7695",
         "match": [{"headers": {"userid": {"exact": "4f9e715d-fe56-4a1e-964b-b00b607e7695"}}}],
         "route": [{"destination": {"host": "adservice-myfeature"}}]},
        {"route": [{"destination": {"host": "adservice"}}]},
    ], rules


def test_runbook_script(remora_bin, tmp_path):
    """config/runbook/feature-branch.sh: start/stop a session on both VirtualServices of the
    walkthrough; the readiness probes' session is refused."""
    script = pathlib.Path(harness.REPO) / "config" / "runbook" / "feature-branch.sh"
    sid = "4f9e715d-fe56-4a1e-964b-b00b607e7695"
    frontend = vs_doc("frontend", [
        {"match": [{"headers": {"Cookie": {"exact": f"shop_session-id={sid}"}}}],
         "route": [{"destination": {"host": "frontend-myfeature"}}]},
        default_rule("frontend")], host="*")
    frontend["spec"]["gateways"] = ["istio-system/ingressgateway"]
    gw = {"apiVersion": API, "kind": "Gateway", "metadata": {"name": "ingressgateway", "namespace": "istio-system"},
          "spec": {"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}
    adservice = vs_doc("adservice", [default_rule("adservice")], host="adservice")
    fake = FakeAdmin([gw, frontend, adservice])
    try:
        env = dict(os.environ, REMORA=str(remora_bin), REMORA_ADMIN=fake.url)

        def run(*args):
            return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL, env=env)

        r = run("start", "alice-42", "newui")
        assert r.returncode == 0, show(r)
        fr = fake.resource("virtualservices", "default", "frontend")["spec"]["http"]
        ad = fake.resource("virtualservices", "default", "adservice")["spec"]["http"]
        assert fr[0] == {"name": "feature-shop-session-id-alice-42",
                         "match": [{"cookies": {"shop_session-id": {"exact": "alice-42"}}}],
                         "route": [{"destination": {"host": "frontend-newui"}}]}, fr
        assert fr[1:] == frontend["spec"]["http"], fr  # the walkthrough's own session stays
        assert ad[0]["name"] == "feature-userid-alice-42" and ad[0]["route"] == [
            {"destination": {"host": "adservice-newui"}}], ad

        r = run("start", sid)  # the walkthrough's session: its hand-written rule is replaced
        assert r.returncode == 0, show(r)
        fr = fake.resource("virtualservices", "default", "frontend")["spec"]["http"]
        assert [x.get("name") for x in fr] == [f"feature-shop-session-id-{sid}", "feature-shop-session-id-alice-42",
                                              None], fr

        r = run("stop", "alice-42")
        assert r.returncode == 0, show(r)
        r = run("stop", sid)
        assert r.returncode == 0, show(r)
        assert fake.resource("virtualservices", "default", "frontend")["spec"]["http"] == [default_rule("frontend")]
        assert fake.resource("virtualservices", "default", "adservice")["spec"]["http"] == [default_rule("adservice")]
        r = run("stop", sid)  # idempotent
        assert r.returncode == 0 and "no rule for" in r.stdout, show(r)

        n = len(fake.requests)
        r = run("start", "x-readiness-probe")
        assert r.returncode == 2 and "readiness" in r.stderr, show(r)
        assert len(fake.requests) == n

        r = run("show")
        assert r.returncode == 0 and "frontend" in r.stdout and "adservice" in r.stdout, show(r)
    finally:
        fake.stop()
