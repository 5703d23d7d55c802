"""`remora validate` (SPEC §1, §2): exit 0 valid, 1 invalid (one line per error naming
resource and field path), 3 unreadable path, 2 usage error; it never binds a port."""
import json
import socket

import harness


def _valid_docs(env):
    docs, ports = env.proxy_docs({"backend.local": 18080})
    return docs, ports


def test_valid_config_exits_0_and_binds_nothing(env):
    docs, ports = _valid_docs(env)
    cfg = env.write(docs, "valid.yaml")
    # Hold the listener port: a validate that tried to bind would fail.
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", ports["listen"]))
    holder.listen(1)
    try:
        r = env.run("validate", "-c", cfg)
    finally:
        holder.close()
    assert r.returncode == 0, f"rc={r.returncode}\nstdout={r.stdout}\nstderr={r.stderr}"


def test_valid_directory_yaml_and_json(env):
    docs, _ = _valid_docs(env)
    d = env.dir / "confdir"
    d.mkdir()
    (d / "a.yaml").write_text(harness.documents_yaml(docs[:2]))   # Proxy + ServiceEntry
    (d / "b.json").write_text(json.dumps(docs[2], indent=1))     # VirtualService as JSON
    (d / "ignored.txt").write_text("this is not configuration: [\n")
    r = env.run("validate", "-c", d)
    assert r.returncode == 0, f"rc={r.returncode}\nstderr={r.stderr}"


def test_invalid_config_exits_1_naming_field_paths(env):
    docs, _ = _valid_docs(env)
    bad_vs = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "bad-regex", "namespace": "default"},
        "spec": {"hosts": ["reviews.local"], "http": [{
            "match": [{"headers": {"userid": {"regex": "(unclosed"}}}],
            "route": [{"destination": {"host": "backend.local"}}]}]},
    }
    bad_se = harness.service_entry("bad-resolution", "other.local", [1234])
    bad_se["spec"]["resolution"] = "SOMETIMES"
    cfg = env.write(docs + [bad_vs, bad_se], "invalid.yaml")
    r = env.run("validate", "-c", cfg)
    assert r.returncode == 1, f"rc={r.returncode}\nstderr={r.stderr}"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    regex_lines = [ln for ln in lines if "spec.http[0].match[0].headers.userid.regex" in ln]
    assert regex_lines, f"no stderr line names spec.http[0].match[0].headers.userid.regex:\n{r.stderr}"
    assert "bad-regex" in regex_lines[0], f"error line does not name the resource: {regex_lines[0]}"
    res_lines = [ln for ln in lines if "spec.resolution" in ln]
    assert res_lines, f"the second error (spec.resolution) is not listed:\n{r.stderr}"
    assert "bad-resolution" in res_lines[0], f"error line does not name the resource: {res_lines[0]}"


def test_yaml_syntax_error_names_file(env):
    cfg = env.dir / "broken.yaml"
    cfg.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: {hosts: [a\n")
    r = env.run("validate", "-c", cfg)
    assert r.returncode == 1, f"rc={r.returncode}\nstderr={r.stderr}"
    assert "broken.yaml" in r.stderr, r.stderr


def test_missing_file_exits_3(env):
    path = env.dir / "does-not-exist.yaml"
    r = env.run("validate", "-c", path)
    assert r.returncode == 3, f"rc={r.returncode}\nstderr={r.stderr}"
    assert "does-not-exist.yaml" in r.stderr, r.stderr


def test_usage_error_exits_2(env):
    r = env.run("validate", "--no-such-flag")
    assert r.returncode == 2, f"rc={r.returncode}\nstderr={r.stderr}"
    r = env.run("no-such-command")
    assert r.returncode == 2, f"rc={r.returncode}\nstderr={r.stderr}"
