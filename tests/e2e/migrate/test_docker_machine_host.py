"""A host docker-machine set up, read from its store, reached with what flotte copied.

The host is a real sshd test host whose dockerd the test configures as docker-machine's
provisioner did (its own CA, a server certificate for the host's IP, flags in
/etc/default/docker). After reading the store and copying the material, a docker
client, the docker CLI (through the context flotte writes) and SSH reach the host with
no change on it and none in the docker-machine directory.
"""

from __future__ import annotations

import shutil
import subprocess
from contextlib import closing
from pathlib import Path

import docker
import pytest
from dm_helpers import HOST_STATE, tls_client, tree

import fixtures.sshd_hosts as _sshd
from fixtures.docker_machine import generic_driver, write_machine
from flotte import contexts
from flotte.migrate import read_store

pytestmark = pytest.mark.docker


def test_imported_generic_machine_is_reached_with_its_own_certificates(
    machine_host, ssh_lab: _sshd.SSHLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, tls = machine_host
    store = tmp_path / "docker-machine"
    write_machine(
        store,
        "rack-b12",
        "generic",
        generic_driver(store, "rack-b12", host.ip, SSHUser="root"),
        tls,
        ssh_key=ssh_lab.key.read_bytes(),
        engine={"Labels": ["provider=generic"]},
    )
    store_before, host_before = tree(store), host.sh(HOST_STATE)

    found = read_store(store)
    assert found.skipped == []
    (machine,) = found.machines
    record, endpoint = machine.install(tmp_path / "flotte" / "machines" / machine.name)
    assert endpoint.tls_dir is not None and endpoint.ssh_key is not None

    with closing(tls_client(endpoint.host, Path(endpoint.tls_dir), endpoint.docker_port)) as client:
        info = client.info()
    assert "provider=generic" in info["Labels"]

    # the docker CLI, through the context flotte writes from the imported material
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    ctx = contexts.write(machine.name, endpoint.docker_url, tls_dir=endpoint.tls_dir)
    if shutil.which("docker"):
        res = subprocess.run(
            ["docker", "--context", ctx, "info", "--format", "{{json .Labels}}"],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                "DOCKER_CONFIG": str(tmp_path / "docker-config"),
                "PATH": "/usr/bin:/bin:/usr/local/bin",
            },
        )
        assert res.returncode == 0, res.stderr
        assert "provider=generic" in res.stdout

    # and SSH, with the key copied from the machine's directory
    ssh = subprocess.run(
        [
            "ssh", "-i", endpoint.ssh_key, "-p", str(endpoint.ssh_port),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
            f"{endpoint.ssh_user}@{endpoint.host}", "hostname",
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert ssh.returncode == 0, ssh.stderr
    assert record.data["ssh_host"] == host.ip

    assert host.sh(HOST_STATE) == host_before  # nothing changed on the host
    assert tree(store) == store_before  # nor in the docker-machine directory


def test_the_installations_own_ca_does_not_reach_an_imported_engine(
    machine_host, tmp_path: Path
) -> None:
    """The copied material is what makes it work: flotte's own client certificate is refused."""
    import requests

    from flotte.pki import CertificateAuthority

    host, tls = machine_host
    ca = CertificateAuthority(tmp_path / "certs").ensure()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "ca.pem").write_bytes(tls.ca_pem)  # the engine is trusted...
    (mixed / "cert.pem").write_bytes(ca.client.cert.read_bytes())  # ...but not this client
    (mixed / "key.pem").write_bytes(ca.client.key.read_bytes())
    with pytest.raises((docker.errors.DockerException, requests.exceptions.RequestException)):
        tls_client(host.ip, mixed).ping()


@pytest.mark.parametrize("access", ["owner", "use"])
def test_a_bundle_gives_another_computer_a_working_engine(
    machine_host, ssh_lab: _sshd.SSHLab, tmp_path: Path, access: str
) -> None:
    """Imported on computer A, exported, opened on computer B: the engine answers there."""
    from flotte.share import Access, Bundle, SharedNode

    host, tls = machine_host
    store = tmp_path / "docker-machine"
    write_machine(
        store, "rack-b12", "generic", generic_driver(store, "rack-b12", host.ip), tls,
        ssh_key=ssh_lab.key.read_bytes(),
    )  # fmt: skip
    (machine,) = read_store(store).machines
    record, endpoint = machine.install(tmp_path / "computer-a" / machine.name)
    bundle = Bundle.build(
        "machine", machine.name, Access(access), [SharedNode(machine.name, record, endpoint)],
        machine.tls,
    )  # fmt: skip
    data = bundle.seal(passphrase="a passphrase for computer b")

    opened = Bundle.open(data, "rack-b12.bundle", passphrase="a passphrase for computer b")
    (node,) = opened.install(tmp_path / "computer-b" / machine.name)
    assert node.endpoint.tls_dir and str(tmp_path / "computer-b") in node.endpoint.tls_dir
    with closing(tls_client(node.endpoint.host, Path(node.endpoint.tls_dir))) as client:
        assert client.ping()
    if access == "owner":  # the SSH key came along, and works
        ssh = subprocess.run(
            [
                "ssh", "-i", node.endpoint.ssh_key or "", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp_path / 'kh'}",
                f"root@{node.endpoint.host}", "true",
            ],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert ssh.returncode == 0, ssh.stderr
    else:
        assert node.endpoint.ssh_key is None and node.record.data["read_only"] is True
