"""What a node runs to join the mesh: shell text, run by the provisioner's session.

The kernel module where ``ip link add ... type wireguard`` works, Debian's
``wireguard-go`` otherwise (run in the foreground in the background: its
self-daemonising mode fails in containers). The configuration goes in a 0600 file and
is applied with ``wg setconf`` (keys never on a command line).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from flotte.mesh.topology import INTERFACE, WG_PORT

CONF = f"/etc/wireguard/{INTERFACE}.conf"
CHAIN = "FLOTTE-MESH"
PIDFILE = f"/run/flotte-wireguard-{INTERFACE}.pid"


def install() -> str:
    """wireguard-tools always; wireguard-go only where the kernel has no WireGuard
    (one apt run, only for what is missing; Debian and Ubuntu nodes)."""
    return (
        "set -e\n"
        'pkgs=""\n'
        'command -v wg >/dev/null || pkgs="wireguard-tools"\n'
        'command -v ip >/dev/null || pkgs="$pkgs iproute2"\n'
        "if ip link add flotte-probe type wireguard 2>/dev/null; then ip link del flotte-probe\n"
        'else command -v wireguard-go >/dev/null || pkgs="$pkgs wireguard-go"\n'
        # a container node may have the device allowed but not made (no --privileged)
        "  [ -c /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200; }\n"
        "fi\n"
        '[ -z "$pkgs" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive '
        "apt-get install -y -qq --no-install-recommends $pkgs >/dev/null; }\n"
    )


def up(mesh_address: str, prefix: int) -> str:
    """Bring the interface up with the configuration already written to ``CONF``."""
    q = shlex.quote
    return (
        "set -e\n"
        f"if ! ip link show {INTERFACE} >/dev/null 2>&1; then\n"
        f"  ip link add {INTERFACE} type wireguard 2>/dev/null || "
        f"{{ nohup wireguard-go -f {INTERFACE} >/var/log/flotte-wireguard.log 2>&1 & "
        f"echo $! > {PIDFILE}; "
        # wg talks to wireguard-go over its UAPI socket, which comes after the link.
        f"for i in $(seq 100); do [ -S /var/run/wireguard/{INTERFACE}.sock ] && break; "
        "sleep 0.1; done; }\n"
        "fi\n"
        # syncconf: peers that stay keep their sessions when members come and go
        f"wg syncconf {INTERFACE} {q(CONF)}\n"
        f"ip address replace {q(mesh_address)}/{prefix} dev {INTERFACE}\n"
        f"ip link set {INTERFACE} up\n"
    )


def firewall(sources: Sequence[str]) -> str:
    """Only the WireGuard UDP port, only from the members' public addresses (SSH hosts;
    clouds do the same with security group rules)."""
    rules = [
        f"iptables -N {CHAIN} 2>/dev/null || iptables -F {CHAIN}",
        *(
            f"iptables -A {CHAIN} -p udp -s {shlex.quote(s)} --dport {WG_PORT} -j ACCEPT"
            for s in sources
        ),
        f"iptables -A {CHAIN} -p udp --dport {WG_PORT} -j DROP",
        f"iptables -C INPUT -j {CHAIN} 2>/dev/null || iptables -I INPUT -j {CHAIN}",
    ]
    return "set -e\n" + "\n".join(rules) + "\n"


def down() -> str:
    """Leave the mesh: interface, configuration, firewall chain."""
    return (
        f"ip link del {INTERFACE} 2>/dev/null || true\n"
        f'[ -f {PIDFILE} ] && kill "$(cat {PIDFILE})" 2>/dev/null; rm -f {PIDFILE}\n'
        f"rm -f {CONF}\n"
        f"iptables -D INPUT -j {CHAIN} 2>/dev/null || true\n"
        f"iptables -F {CHAIN} 2>/dev/null || true; iptables -X {CHAIN} 2>/dev/null || true\n"
    )
