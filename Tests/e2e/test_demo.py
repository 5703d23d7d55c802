"""The demo `make run` starts: config/demo.yaml served by the real binary, with the
feature-branch routing it shows (cookie at the gateway, userid on the mesh listener;
ports rewritten to free ones), and the embedded copy `remora run` serves without -c
kept identical to the file."""
import re

from harness import REPO, free_port, http_request

SESSION = "4f9e715d-fe56-4a1e-964b-b00b607e7695"


def test_embedded_demo_is_config_demo_yaml():
    swift = (REPO / "Sources/remora/DemoConfig.swift").read_text()
    m = re.search(r'#"""\n(.*)"""#', swift, re.S)
    assert m, "DemoConfig.swift does not embed a raw string"
    assert m.group(1) == (REPO / "config/demo.yaml").read_text()


def test_demo_routes_only_my_session_to_the_branch(env):
    main, branch = env.echo(name="frontend"), env.echo(name="frontend-myfeature")
    ads, ads_branch = env.echo(name="adservice"), env.echo(name="adservice-myfeature")
    gateway, mesh = free_port(), free_port()
    text = (REPO / "config/demo.yaml").read_text()
    for old, new in (("18081", main.port), ("18082", branch.port), ("18083", ads.port),
                     ("18084", ads_branch.port), ("8080", gateway), ("15001", mesh)):
        assert old in text
        text = text.replace(old, str(new))
    cfg = env.dir / "demo.yaml"
    cfg.write_text(text)
    env.run_proxy([cfg], {"listen": gateway})

    def served_by(headers):
        r = http_request(gateway, "GET", "/", host="shop.example", headers=headers)
        assert r.status == 200, r
        return r.header("x-echo-name")

    assert served_by([]) == "frontend"
    assert served_by([("Cookie", f"shop_session-id={SESSION}")]) == "frontend-myfeature"
    # the session cookie among others still matches; another session or a probe does not
    assert served_by([("Cookie", f"theme=dark; shop_session-id={SESSION}; x=1")]) == "frontend-myfeature"
    assert served_by([("Cookie", "shop_session-id=x-readiness-probe")]) == "frontend"
    assert served_by([("Cookie", f"shop_session-id={SESSION}0")]) == "frontend"

    def mesh_served_by(headers):
        r = http_request(mesh, "GET", "/ads", host="adservice", headers=headers)
        assert r.status == 200, r
        return r.header("x-echo-name")

    assert mesh_served_by([]) == "adservice"
    assert mesh_served_by([("userid", SESSION)]) == "adservice-myfeature"
    assert mesh_served_by([("UserID", "someone-else")]) == "adservice"
    # the gateway's cookie rule does not leak into the mesh, nor the mesh rule to the gateway
    assert mesh_served_by([("Cookie", f"shop_session-id={SESSION}")]) == "adservice"
    assert served_by([("userid", SESSION)]) == "frontend"
