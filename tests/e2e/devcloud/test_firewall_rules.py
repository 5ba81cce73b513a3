"""Security group rules rendered for iptables (pure; no devcloud needed)."""

from __future__ import annotations

from types import SimpleNamespace

from flotte.devcloud import firewall


def _port(groups: list[str], ip: str, security: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        security_group_ids=groups,
        fixed_ips=[{"ip_address": ip, "subnet_id": "s"}],
        is_port_security_enabled=security,
    )


def _group(*rules: dict[str, object]) -> SimpleNamespace:
    return SimpleNamespace(security_group_rules=list(rules))


SSH = {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp"}
SSH |= {"port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8"}
PEERS = {"direction": "ingress", "ethertype": "IPv4", "protocol": None, "remote_group_id": "g"}
EGRESS = {"direction": "egress", "ethertype": "IPv4", "protocol": None}
V6 = {"direction": "ingress", "ethertype": "IPv6", "protocol": None}


def test_rules_allow_what_groups_allow_and_drop_the_rest() -> None:
    ports = [_port(["g"], "10.42.1.5")]
    peers = [*ports, _port(["g"], "10.42.1.6")]
    text = firewall.render(ports, {"g": _group(SSH, PEERS, EGRESS, V6)}, firewall.members_of(peers))
    lines = text.splitlines()
    assert lines[0] == "*mangle" and lines[-1] == "COMMIT"
    assert "-A DEVCLOUD-SG -s 10.0.0.0/8 -p tcp --dport 22:22 -j RETURN" in lines
    assert "-A DEVCLOUD-SG -s 10.42.1.5 -j RETURN" in lines
    assert "-A DEVCLOUD-SG -s 10.42.1.6 -j RETURN" in lines
    assert lines[-2] == "-A DEVCLOUD-SG -j DROP"
    assert len([x for x in lines if "RETURN" in x]) == 4  # + conntrack; egress/IPv6 skipped


def test_port_security_off_lets_everything_in() -> None:
    text = firewall.render([_port([], "10.42.1.5", security=False)], {}, {})
    assert text.splitlines()[-2] == "-A DEVCLOUD-SG -j RETURN"
