"""``flotte machine import --from-docker-machine`` end to end, on a host docker-machine set up.

The host is a real sshd test host whose dockerd serves TLS with docker-machine's own CA;
the store is written in docker-machine's format. After the import every verb a
docker-machine user types works against the untouched host, with its own certificates;
``rm`` forgets it and leaves the host as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dm_helpers import HOST_STATE, tree

import fixtures.sshd_hosts as _sshd
from fixtures.docker_machine import (
    MachineTLS,
    base_driver,
    generic_driver,
    make_tls,
    write_machine,
)
from fixtures.local import Flotte

pytestmark = pytest.mark.docker


def make_flotte(directory: Path) -> Flotte:
    """``Flotte.own``, with nothing of the caller's docker-machine set-up either."""
    flotte = Flotte.own(directory)
    for var in ("MACHINE_STORAGE_PATH", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"):
        flotte.env.pop(var, None)
    return flotte


@pytest.fixture
def flotte(tmp_path: Path) -> Iterator[Flotte]:
    yield make_flotte(tmp_path / "a")


def docker_cli(flotte: Flotte, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        env={**flotte.env, **(env or {})},
        timeout=60,
    )


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode != 0, res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def dm_store(tmp_path: Path, host: Any, tls: MachineTLS, key: bytes) -> Path:
    """A docker-machine directory: the real host, plus machines that cannot come in."""
    store = tmp_path / "docker-machine"
    write_machine(
        store,
        "Rack.B12",
        "generic",
        generic_driver(store, "Rack.B12", host.ip),
        tls,
        ssh_key=key,
        engine={"Labels": ["provider=generic"]},
    )
    other = make_tls("127.0.0.1")
    write_machine(store, "plugin", "frobnicator", base_driver(store, "plugin", "10.9.9.9"), other)
    broken = store / "machines" / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"ConfigVersion": 3, "Driver": ')
    return store


def test_import_then_every_verb_on_the_untouched_host(
    machine_host: tuple[Any, MachineTLS], ssh_lab: _sshd.SSHLab, flotte: Flotte, tmp_path: Path
) -> None:
    host, tls = machine_host
    store = dm_store(tmp_path, host, tls, ssh_lab.key.read_bytes())
    store_before, host_before = tree(store), host.sh(HOST_STATE)

    dry = flotte("machine", "import", "--from-docker-machine", "--dry-run", str(store))
    assert "rack-b12 (from Rack.B12): would import: generic -> ssh" in dry.stdout
    assert flotte("machine", "ls", "-q").stdout == ""  # a dry run records nothing

    res = flotte("machine", "import", "--from-docker-machine", "-s", str(store))
    lines = res.stdout.splitlines()
    assert len(lines) == 3, res.stdout
    assert lines[0].startswith("broken: skipped: config.json is not valid JSON")
    assert lines[1] == "plugin: skipped: " + lines[1].split(": ", 2)[2]
    assert "driver 'frobnicator' is unknown to flotte" in lines[1]
    assert lines[2].startswith("rack-b12 (from Rack.B12): imported: generic -> ssh")

    again = flotte("machine", "import", "--from-docker-machine", "-s", str(store), "Rack.B12")
    assert again.stdout == "rack-b12 (from Rack.B12): already imported\n"

    # docker's own CLI, through the context flotte wrote, and through `env`
    info = docker_cli(
        flotte, "--context", "flotte-rack-b12", "info", "--format", "{{json .Labels}}"
    )
    assert info.returncode == 0, info.stderr
    assert "provider=generic" in json.loads(info.stdout)
    env = dict(
        line.removeprefix("export ").replace('"', "").split("=", 1)
        for line in flotte("machine", "env", "--shell", "bash", "rack-b12").stdout.splitlines()
        if line.startswith("export ")
    )
    assert env["DOCKER_CERT_PATH"].startswith(str(flotte.home))
    assert docker_cli(flotte, "ps", env=env).returncode == 0

    ls = json.loads(flotte("machine", "ls", "-f", "json").stdout)
    (row,) = ls
    assert row["name"] == "rack-b12" and row["state"] == "Running" and row["driver"] == "ssh"
    assert row["docker"] and row["docker"] != "Unknown"
    assert flotte("machine", "status", "rack-b12").stdout.strip() == "Running"
    inspect = json.loads(flotte("machine", "inspect", "rack-b12").stdout)
    assert inspect["record"]["data"]["imported"]["from"] == "docker-machine"
    assert "BEGIN" not in json.dumps(inspect)  # no key material, only paths
    assert inspect["tls"]["ca"] == str(Path(env["DOCKER_CERT_PATH"]) / "ca.pem")
    assert flotte("machine", "ssh", "rack-b12", "hostname").returncode == 0
    config = tmp_path / "ssh_config"
    config.write_text(flotte("machine", "ssh-config").stdout)
    by_config = subprocess.run(
        ["ssh", "-F", str(config), "-o", "BatchMode=yes", "rack-b12", "hostname"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert by_config.returncode == 0, by_config.stderr
    assert flotte("machine", "url", "rack-b12").stdout.strip() == f"tcp://{host.ip}:2376"

    assert host.sh(HOST_STATE) == host_before  # nothing changed on the host
    assert tree(store) == store_before  # nor in docker-machine's directory

    # stop and start drive the host's docker service; the engine comes back on its own CA
    flotte("machine", "stop", "rack-b12")
    assert flotte("machine", "status", "rack-b12").stdout.strip() == "Stopped"
    flotte("machine", "start", "rack-b12")
    assert flotte("machine", "status", "rack-b12").stdout.strip() == "Running"
    assert docker_cli(flotte, "--context", "flotte-rack-b12", "ps").returncode == 0

    refused = flotte("machine", "regenerate-certs", "-f", "rack-b12", check=False)
    assert "keeps the certificates of its own CA" in one_line_error(refused)

    # rm forgets: flotte's record, copies and context go; the host keeps its engine
    engine_config = host.sh("sha256sum /etc/docker/* /etc/default/docker")
    flotte("machine", "rm", "-y", "rack-b12")
    assert flotte("machine", "ls", "-q").stdout == ""
    assert not (flotte.home / "secrets" / "machines" / "rack-b12").exists()
    assert docker_cli(flotte, "--context", "flotte-rack-b12", "ps").returncode != 0
    assert host.sh("sha256sum /etc/docker/* /etc/default/docker") == engine_config
    assert host.sh("pidof dockerd").strip()
    assert tree(store) == store_before


def test_bad_stores_are_one_line_and_change_nothing(flotte: Flotte, tmp_path: Path) -> None:
    missing = flotte(
        "machine", "import", "--from-docker-machine", "-s", str(tmp_path / "nope"), check=False
    )
    assert "no such directory" in one_line_error(missing)
    (tmp_path / "plain").mkdir()
    not_a_store = flotte(
        "machine", "import", "--from-docker-machine", "-s", str(tmp_path / "plain"), check=False
    )
    assert "not a docker-machine directory" in one_line_error(not_a_store)
    # only machines that cannot be imported: each said, exit 1, nothing recorded
    store = tmp_path / "dm"
    write_machine(
        store, "odd", "frobnicator", base_driver(store, "odd", "10.1.1.1"), make_tls("10.1.1.1")
    )
    expired = make_tls("10.1.1.2", client_days=1, start=dt.datetime(2019, 1, 1, tzinfo=dt.UTC))
    write_machine(store, "old", "generic", generic_driver(store, "old", "10.1.1.2"), expired)
    res = flotte("machine", "import", "--from-docker-machine", "-s", str(store), check=False)
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        res.stdout.splitlines()[0],
        "old: skipped: client certificate expired on 2019-01-02",
    ]
    assert res.stdout.startswith("odd: skipped: driver 'frobnicator' is unknown")
    assert flotte("machine", "ls", "-q").stdout == ""
    assert not list((flotte.home / "secrets" / "machines").glob("*"))
