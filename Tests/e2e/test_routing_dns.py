"""A destination host with no ServiceEntry is a DNS cluster (SPEC §2): resolved by name,
port from destination.port.number, IPv4 preferred when the name has both."""
from harness import http_request


def test_destination_without_service_entry_resolves_by_dns(env):
    e = env.echo(name="by-dns")
    vs = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "dns", "namespace": "default"},
        "spec": {"hosts": ["shop.local"],
                 "http": [{"route": [{"destination": {"host": "localhost", "port": {"number": e.port}}}]}]},
    }
    px = env.run_with([vs], "dns")
    # localhost has 127.0.0.1 and ::1; the echo listens on IPv4 only, so every request
    # must land there (round robin onto ::1 would refuse half of them).
    for _ in range(6):
        r = http_request(px.port, "GET", "/dns", host="shop.local")
        assert r.status == 200 and r.header("x-echo-name") == "by-dns", r
