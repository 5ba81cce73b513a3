"""The mesh as data: peers of one's own site on their private address, of another site
on their public one; the firewall opens the WireGuard port to exactly those."""

from __future__ import annotations

from flotte.mesh import keys, topology


def member(name: str, site: str, public: str | None, private: str, index: int) -> topology.Member:
    return topology.Member(name, site, public, keys.public_of(keys.generate()), index, private)


def peers(conf: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for block in conf.split("[Peer]")[1:]:
        fields = dict(line.split(" = ", 1) for line in block.strip().splitlines() if " = " in line)
        out[fields["AllowedIPs"]] = fields
    return out


def test_own_site_on_private_other_site_on_public_addresses() -> None:
    a = member("a", "lab", "203.0.113.1", "10.0.0.1", 0)
    b = member("b", "lab", None, "10.0.0.2", 1)  # no public address: dials out only
    c = member("c", "cloud", "198.51.100.3", "172.16.0.3", 2)
    members = [a, b, c]
    got = peers(topology.wg_config(a, "PRIVATE", members))
    assert got["10.213.0.2/32"]["Endpoint"] == "10.0.0.2:51820"
    assert "PersistentKeepalive" not in got["10.213.0.2/32"]
    assert got["10.213.0.3/32"]["Endpoint"] == "198.51.100.3:51820"
    # b reaches c through its public address and keeps the path open
    from_b = peers(topology.wg_config(b, "PRIVATE", members))
    assert from_b["10.213.0.3/32"]["Endpoint"] == "198.51.100.3:51820"
    assert from_b["10.213.0.3/32"]["PersistentKeepalive"] == str(topology.KEEPALIVE)
    # c has no endpoint for b (no public address): b's keepalive brings it
    assert "Endpoint" not in peers(topology.wg_config(c, "PRIVATE", members))["10.213.0.2/32"]
    assert topology.allowed_sources(a, members) == ["10.0.0.2/32", "198.51.100.3/32"]
    assert topology.allowed_sources(c, members) == ["203.0.113.1/32"]
