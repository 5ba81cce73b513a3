"""``flotte machine`` and ``flotte cluster`` with ``--driver ssh``, end to end on real hosts."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from ssh_helpers import TINY, run_tiny, snapshot, started, without_containers

from fixtures.local import Flotte

pytestmark = pytest.mark.docker


def docker_cli(flotte: Flotte, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, env=flotte.env, timeout=60
    )


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    """The error a user sees: one line (after the progress lines, if any)."""
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("  ")]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_machine_on_existing_host(flotte: Flotte, ssh_lab, ssh_host) -> None:
    host = ssh_host("docker")
    kept = run_tiny(host, "keepme")
    before = snapshot(host)
    out = flotte(
        "machine", "create", "-d", "ssh", "--ssh-host", host.ip, "--ssh-user", "deploy",
        "--ssh-key", str(ssh_lab.key), "--engine-label", "rack=b12", "box",
    )  # fmt: skip
    assert "flotte machine env box" in out.stdout
    info = docker_cli(flotte, "--context", "flotte-box", "info", "--format", "{{json .Labels}}")
    assert info.returncode == 0, info.stderr
    assert "rack=b12" in json.loads(info.stdout)
    assert started(host, "keepme") == kept  # adopted without stopping what ran there

    key_copy = flotte.home / "secrets" / "machines" / "box" / "ssh_key"
    assert key_copy.stat().st_mode & 0o777 == 0o600
    assert flotte("machine", "status", "box").stdout.strip() == "Running"
    assert flotte("machine", "url", "box").stdout.strip() == f"tcp://{host.ip}:2376"
    assert "ssh" in flotte("machine", "ls").stdout

    flotte("machine", "stop", "box")
    assert flotte("machine", "status", "box").stdout.strip() == "Stopped"
    flotte("machine", "start", "box")
    assert flotte("machine", "status", "box").stdout.strip() == "Running"
    assert docker_cli(flotte, "--context", "flotte-box", "ps", "-q").returncode == 0

    ssh = flotte("machine", "ssh", "box", "id", "-un")
    assert ssh.stdout.strip() == "deploy"

    cert = host.sh("cat /etc/docker/flotte/server.pem")
    flotte("machine", "regenerate-certs", "-f", "box")
    assert host.sh("cat /etc/docker/flotte/server.pem") != cert
    assert docker_cli(flotte, "--context", "flotte-box", "ps", "-q").returncode == 0

    flotte("machine", "rm", "-y", "box")
    assert not key_copy.exists()
    # stop stopped the engine's containers, as docker-machine's did; the rest is as it was
    assert without_containers(snapshot(host)) == without_containers(before)
    assert "keepme" in host.sh("docker ps -a --format '{{.Names}}'")
    assert flotte("machine", "ls", "-q").stdout.strip() == ""


def test_bad_input_gives_one_line_and_records_nothing(flotte: Flotte, ssh_lab, ssh_host) -> None:
    host = ssh_host("docker")
    before = snapshot(host)
    key = str(ssh_lab.key)

    res = flotte("machine", "create", "-d", "ssh", "nohost", check=False)
    assert "--ssh-host" in one_line_error(res) and res.returncode == 2

    res = flotte(
        "machine", "create", "-d", "ssh", "--ssh-host", ssh_lab.free_ip(), "--ssh-key", key,
        "gone", check=False, timeout=120,
    )  # fmt: skip
    assert "cannot reach" in one_line_error(res)

    res = flotte(
        "machine", "create", "-d", "ssh", "--ssh-host", f"nosudo@{host.ip}", "--ssh-key", key,
        "nosudo", check=False,
    )  # fmt: skip
    assert "cannot use sudo without a password" in one_line_error(res)

    res = flotte(
        "machine", "create", "-d", "ssh", "--ssh-host", host.ip, "--ssh-key", "/nonexistent",
        "nokey", check=False,
    )  # fmt: skip
    assert "/nonexistent does not exist" in one_line_error(res)

    res = flotte(
        "machine", "create", "-d", "ssh", "--ssh-host", f"{host.ip}:70000", "nokey", check=False
    )
    assert "not a number from 1 to 65535" in one_line_error(res)

    odd = ssh_host("bare")
    odd.sh(
        "rm -f /etc/os-release && printf 'ID=plan9\\nPRETTY_NAME=\"Plan 9\"\\n' > /etc/os-release"
    )
    odd_before = snapshot(odd)
    res = flotte(
        "machine", "create", "-d", "ssh", "--ssh-host", odd.ip, "--ssh-key", key, "odd",
        check=False,
    )  # fmt: skip
    assert "runs Plan 9, on which flotte cannot install Docker" in one_line_error(res)

    assert flotte("machine", "ls", "-q").stdout.strip() == ""
    assert snapshot(host) == before
    assert snapshot(odd) == odd_before


def swarm(flotte: Flotte, cluster: str, *args: str) -> str:
    res = docker_cli(flotte, "--context", f"flotte-{cluster}", *args)
    assert res.returncode == 0, res.stderr
    return res.stdout


def cluster_lifecycle(flotte: Flotte, ssh_lab, hosts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for h in hosts:
        h.sh(TINY)  # the image the service runs (no registry here)
    before = {h.name: snapshot(h) for h in hosts}
    inventory = tmp_path / "hosts.txt"
    inventory.write_text(
        f"# rack B12\n{hosts[0].ip}\ndeploy@{hosts[1].ip}:22   # a sudo user\n{hosts[2].ip}\n"
    )
    out = flotte(
        "cluster", "create", "rack", "--driver", "ssh", "--hosts-file", str(inventory),
        "--master-count", "1", "--node-count", "2", "--ssh-key", str(ssh_lab.key),
        "--timeout", "2",
    )  # fmt: skip
    assert "CREATE_COMPLETE" in out.stdout
    nodes = swarm(flotte, "rack", "node", "ls", "--format", "{{.Status}} {{.ManagerStatus}}")
    assert sorted(nodes.split("\n")[:-1]) == ["Ready ", "Ready ", "Ready Leader"]

    swarm(
        flotte, "rack", "service", "create", "--detach", "--name", "sleepers", "--replicas", "3",
        "--endpoint-mode", "dnsrr", "--no-resolve-image", "tiny", "/busybox", "sleep", "1000",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ps = swarm(flotte, "rack", "service", "ps", "sleepers", "--format", "{{.CurrentState}}")
        if ps.count("Running") == 3:
            break
        time.sleep(0.5)
    assert ps.count("Running") == 3, ps

    flotte("cluster", "resize", "rack", "--node-count", "3", "--hosts", hosts[3].ip)
    nodes = swarm(flotte, "rack", "node", "ls", "--format", "{{.Status}}")
    assert nodes.split() == ["Ready"] * 4

    # shrinking gives the removed host back as it was (out of the swarm, no TLS config)
    flotte("cluster", "resize", "rack", "--node-count", "2", "--nodes-to-remove", "rack-node-2")
    assert len(swarm(flotte, "rack", "node", "ls", "-q").split()) == 3
    assert hosts[3].sh("docker info -f '{{.Swarm.LocalNodeState}}'").strip() == "inactive"
    assert snapshot(hosts[3]) == before[hosts[3].name]

    flotte("cluster", "delete", "rack")
    for h in hosts:
        assert h.sh("docker info -f '{{.Swarm.LocalNodeState}}'").strip() == "inactive"
        assert snapshot(h) == before[h.name], h.name


def test_cluster_over_existing_hosts(flotte: Flotte, ssh_lab, ssh_host, tmp_path: Path) -> None:
    """Hosts named like the nodes flotte plans (rack-master-0...): create, serve, grow, delete."""
    names = ["rack-master-0", "rack-node-0", "rack-node-1", "rack-node-2"]
    cluster_lifecycle(flotte, ssh_lab, [ssh_host("docker", hostname=n) for n in names], tmp_path)


def test_cluster_over_hosts_with_their_own_names(
    flotte: Flotte, ssh_lab, ssh_host, tmp_path: Path
) -> None:
    # The swarm knows a node by its host's own name, which flotte does not change on
    # someone's server (NodeRecord.data["hostname"]); the steps look nodes up by it.
    cluster_lifecycle(flotte, ssh_lab, [ssh_host("docker") for _ in range(4)], tmp_path)
