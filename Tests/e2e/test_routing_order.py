"""Actions apply in Istio's HTTP filter order: fault, then CORS, then the router."""
import harness
from harness import http_request


def test_fault_abort_comes_before_cors_preflight(env):
    e = env.echo(name="order")
    vs = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "order", "namespace": "default"},
        "spec": {"hosts": ["order.local"], "http": [{
            "fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}},
            "corsPolicy": {"allowOrigins": [{"exact": "https://a.example"}], "allowMethods": ["GET", "POST"]},
            "route": [{"destination": {"host": "order.local"}}],
        }]},
    }
    px = env.run_with([harness.service_entry("order", "order.local", [e.port]), vs], "order")
    r = http_request(px.port, "OPTIONS", "/", host="order.local",
                     headers=[("Origin", "https://a.example"), ("Access-Control-Request-Method", "POST")])
    assert r.status == 418, f"a preflight under a 100% abort fault must get the abort: {r!r}"
    assert r.header("access-control-allow-methods") is None, r
