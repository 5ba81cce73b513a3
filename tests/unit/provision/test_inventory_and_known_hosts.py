"""Host inventories (``[user@]host[:port] key=...``) and flotte's own known_hosts file."""

from __future__ import annotations

import threading
from pathlib import Path

import asyncssh
import pytest

from flotte.drivers.ssh import HostEntry, load_inventory, parse_host
from flotte.errors import UsageError
from flotte.provision.known_hosts import KnownHosts


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("pi-01", HostEntry("pi-01")),
        ("deploy@10.0.0.5", HostEntry("10.0.0.5", user="deploy")),
        ("deploy@10.0.0.5:2222", HostEntry("10.0.0.5", user="deploy", port=2222)),
        ("[2001:db8::1]:2222", HostEntry("2001:db8::1", port=2222)),
        ("2001:db8::1", HostEntry("2001:db8::1")),
        (
            "h key=~/.ssh/pi user=pi port=2200",
            HostEntry("h", user="pi", port=2200, key="~/.ssh/pi"),
        ),
        ("h role=manager", HostEntry("h")),
    ],
)
def test_parse_host(text: str, entry: HostEntry) -> None:
    assert parse_host(text) == entry


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("h:0", "not a number from 1 to 65535"),
        ("h:70000", "not a number from 1 to 65535"),
        ("h:ssh", "not a number"),
        ("h foo", "is not key=value"),
        ("h color=red", "unknown field 'color'"),
        ("root@", "has no address"),
        ("", "empty host"),
    ],
)
def test_bad_hosts(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_host(text)


def test_inventory_file(tmp_path: Path) -> None:
    inv = tmp_path / "hosts"
    inv.write_text("# rack 12\n\npi-01\ndeploy@pi-02:2222  # the odd one\n")
    assert load_inventory(inv) == [HostEntry("pi-01"), HostEntry("pi-02", user="deploy", port=2222)]
    with pytest.raises(UsageError, match="cannot read the host inventory"):
        load_inventory(tmp_path / "missing")


def test_known_hosts_records_reads_and_forgets(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "known_hosts"
    kh = KnownHosts(path)
    key = asyncssh.generate_private_key("ssh-ed25519")
    other = asyncssh.generate_private_key("ssh-ed25519")
    kh.add("10.0.0.5", 22, key)
    kh.add("10.0.0.5", 22, key)  # recorded once
    kh.add("10.0.0.5", 2222, other)
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("10.0.0.5 ssh-ed25519 ")  # OpenSSH's format: ssh reads it too
    assert lines[1].startswith("[10.0.0.5]:2222 ssh-ed25519 ")
    assert kh.keys_for("10.0.0.5", 22) == [key.convert_to_public()]
    assert kh.keys_for("10.0.0.5", 2222) == [other.convert_to_public()]
    assert kh.keys_for("10.0.0.6", 22) == []
    assert kh.forget("10.0.0.5", 2222) == 1
    assert kh.keys_for("10.0.0.5", 2222) == [] and len(kh.keys_for("10.0.0.5", 22)) == 1


def test_parallel_records_lose_nothing(tmp_path: Path) -> None:
    kh = KnownHosts(tmp_path / "known_hosts")
    keys = [asyncssh.generate_private_key("ssh-ed25519") for _ in range(20)]
    threads = [
        threading.Thread(target=kh.add, args=(f"10.0.1.{i}", 22, k)) for i, k in enumerate(keys)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len((tmp_path / "known_hosts").read_text().splitlines()) == 20
