"""The driver's pure parts: options to credentials, markers, rules (no cloud needed)."""

from __future__ import annotations

import ipaddress

import pytest

from flotte.drivers.openstack import OPTIONS, OpenStackDriver
from flotte.drivers.openstack.connection import close_matches, cloud_spec
from flotte.drivers.openstack.lookups import Flavor, bare_metal_flavor
from flotte.drivers.openstack.marks import marker, name_prefix, owned_by, parse_pairs
from flotte.drivers.openstack.nodes import node_state
from flotte.drivers.openstack.options import metadata
from flotte.drivers.openstack.resources import default_cidr, rule_specs
from flotte.drivers.openstack.wait import (
    Listed,
    booted,
    fault_message,
    next_delay,
    patience_end,
)
from flotte.errors import DriverError, QuotaExceeded, UsageError
from flotte.models import NodeState, Owner


def test_every_docker_machine_flag_is_there_with_its_variable() -> None:
    names = {o.name: o for o in OPTIONS}
    for flag, env in {
        "auth-url": "OS_AUTH_URL", "username": "OS_USERNAME", "password": "OS_PASSWORD",
        "tenant-name": "OS_TENANT_NAME", "tenant-id": "OS_TENANT_ID",
        "domain-name": "OS_DOMAIN_NAME", "domain-id": "OS_DOMAIN_ID",
        "region": "OS_REGION_NAME", "endpoint-type": "OS_ENDPOINT_TYPE",
        "insecure": "OS_INSECURE", "cacert": "OS_CACERT", "flavor-id": "OS_FLAVOR_ID",
        "flavor-name": "OS_FLAVOR_NAME", "image-id": "OS_IMAGE_ID",
        "image-name": "OS_IMAGE_NAME", "net-id": "OS_NETWORK_ID",
        "net-name": "OS_NETWORK_NAME", "floatingip-pool": "OS_FLOATINGIP_POOL",
        "sec-groups": "OS_SECURITY_GROUPS", "keypair-name": "OS_KEYPAIR_NAME",
        "private-key-file": "OS_PRIVATE_KEY_FILE", "ssh-user": "OS_SSH_USER",
        "ssh-port": "OS_SSH_PORT", "user-data-file": "OS_USER_DATA_FILE",
        "config-drive": "OS_CONFIG_DRIVE", "metadata": "OS_METADATA",
        "active-timeout": "OS_ACTIVE_TIMEOUT", "availability-zone": "OS_AVAILABILITY_ZONE",
        "application-credential-id": "OS_APPLICATION_CREDENTIAL_ID",
        "application-credential-secret": "OS_APPLICATION_CREDENTIAL_SECRET",
        "cloud": "OS_CLOUD",
    }.items():  # fmt: skip
        assert names[f"openstack-{flag}"].envvar == env
    assert {o.name for o in OPTIONS if o.secret} == {
        "openstack-password",
        "openstack-application-credential-secret",
    }
    assert names["openstack-active-timeout"].default == 200
    assert OpenStackDriver.capabilities.snapshot


def test_credentials_from_flags() -> None:
    spec = cloud_spec(
        {
            "openstack_auth_url": "https://keystone:5000/v3",
            "openstack_username": "alice",
            "openstack_password": "s3cret",
            "openstack_tenant_name": "formation",
            "openstack_domain_name": "Default",
            "openstack_endpoint_type": "publicURL",
            "openstack_insecure": True,
        }
    )
    assert spec.auth["project_name"] == "formation"
    assert spec.auth["user_domain_name"] == spec.auth["project_domain_name"] == "Default"
    assert (spec.interface, spec.verify) == ("public", False)
    assert "s3cret" not in repr(spec) and "s3cret" not in spec.label


def test_application_credential_rules() -> None:
    spec = cloud_spec(
        {
            "openstack_auth_url": "https://k/v3",
            "openstack_application_credential_id": "abc",
            "openstack_application_credential_secret": "xyz",
            "openstack_tenant_name": "ignored",
        }
    )
    assert spec.auth_type == "v3applicationcredential"
    assert "project_name" not in spec.auth
    with pytest.raises(UsageError, match="application-credential-secret"):
        cloud_spec({"openstack_auth_url": "u", "openstack_application_credential_id": "abc"})
    with pytest.raises(UsageError, match="without"):
        cloud_spec({"openstack_auth_url": "u", "openstack_application_credential_secret": "x"})
    with pytest.raises(UsageError, match="--openstack-cloud"):
        cloud_spec({})


def test_markers_and_ownership() -> None:
    owner = Owner(cluster="web", installation="i1")
    pairs = parse_pairs(marker(owner))
    assert pairs == {"flotte:owner": "i1", "flotte:cluster": "web"}
    assert owned_by(pairs, owner) and owned_by(pairs, Owner(installation="i1"))
    assert not owned_by(pairs, Owner(cluster="db", installation="i1"))
    assert not owned_by(pairs, Owner(installation="i2"))
    assert name_prefix(owner).startswith(name_prefix(Owner(installation="i1")))


def test_rules_open_only_what_is_needed() -> None:
    machine = rule_specs("sg", ["192.0.2.0/24"], swarm=False)
    assert {(r["port_range_min"], r["remote_ip_prefix"]) for r in machine} == {
        (22, "192.0.2.0/24"),
        (2376, "192.0.2.0/24"),
    }
    cluster = rule_specs("sg", ["0.0.0.0/0", "::/0"], swarm=True)
    members = [r for r in cluster if r.get("remote_group_id") == "sg"]
    assert {(r["protocol"], r["port_range_min"]) for r in members} == {
        ("tcp", 2377), ("tcp", 7946), ("udp", 7946), ("udp", 4789),
    }  # fmt: skip
    assert {r["ethertype"] for r in cluster if "remote_ip_prefix" in r} == {"IPv4", "IPv6"}


def test_small_helpers() -> None:
    assert close_matches("m1.smal", ["m1.small", "m1.tiny"]) == " (did you mean: m1.small?)"
    assert "available" in close_matches("zzz", ["a", "b"])
    assert metadata("a=1,b=2") == {"a": "1", "b": "2"}
    with pytest.raises(UsageError):
        metadata("flotte:owner=x")
    net = ipaddress.ip_network(default_cidr(Owner(installation="i"), "web"))
    assert net.prefixlen == 24 and net.subnet_of(ipaddress.ip_network("10.64.0.0/10"))
    bm = Flavor("bm1", "bm", 8, 1, 1, {"resources:CUSTOM_BAREMETAL_GOLD": "1"})
    assert bare_metal_flavor(bm)
    assert not bare_metal_flavor(Flavor("2", "m1.small", 1, 1, 1, {}))


def test_a_listed_server_is_read_from_novas_json() -> None:
    """The watcher keeps each server as Nova's JSON (``Listed``), not the SDK's object:
    the checks, the fault, the node's state and the owner marks read it."""
    raw = {
        "id": "s1",
        "name": "n1",
        "status": "BUILD",
        "OS-EXT-STS:task_state": "spawning",
        "metadata": {"flotte:node": "n1"},
    }
    listed = Listed(raw)
    assert (listed.id, listed.name, listed.task_state) == ("s1", "n1", "spawning")
    assert listed.metadata == {"flotte:node": "n1"}
    assert booted("n1")(listed) is False
    assert node_state(listed) is NodeState.STARTING
    powering = Listed({**raw, "status": "ACTIVE", "OS-EXT-STS:task_state": "powering-off"})
    assert node_state(powering) is NodeState.STOPPING

    full = {"message": "No valid host was found. ", "details": "Traceback (most recent...)"}
    failed = Listed({**raw, "status": "ERROR", "fault": full})
    assert fault_message(failed) == "No valid host was found."
    with pytest.raises(QuotaExceeded, match="n1 failed to boot: No valid host"):
        booted("n1")(failed)
    broken = Listed({**raw, "status": "ERROR", "fault": {"message": "disk full"}})
    with pytest.raises(DriverError, match="disk full") as err:
        booted("n1")(broken)
    assert not isinstance(err.value, QuotaExceeded)  # a broken server, not a full cloud


def test_the_watchers_poll_backs_off_with_the_longest_wait() -> None:
    """Quick at first (a quick boot is seen at once), then a twentieth of the oldest
    server's wait, never over 10 s: 400 servers polled once a second for 26 minutes
    cost 1,075 listings."""
    delays, delay = [], 0.25
    for waited in (0.25, 0.75, 1.75, 2.75, 3.75):
        delay = next_delay(delay, waited, 1.0)
        delays.append(delay)
    assert delays == [0.5, 1.0, 1.0, 1.0, 1.0]
    assert next_delay(1.0, 60.0, 1.0) == 3.0
    assert next_delay(3.0, 1_000.0, 1.0) == 10.0
    # a new burst of servers starts again from the quick first poll
    assert next_delay(0.25, 0.25, 1.0) == 0.5
    # over a 26-minute wait, polls fall from one a second (1,559) to about two hundred
    t, delay, polls = 0.0, 0.25, 0
    while t < 1_559:
        t += delay
        delay, polls = next_delay(delay, t, 1.0), polls + 1
    assert 190 < polls < 220, polls


def test_a_server_waits_on_while_those_awaited_with_it_come_up() -> None:
    """400 boots accepted within a minute come up over ten minutes on a busy cloud: a
    server gives up ``timeout`` seconds after it started or after the last one awaited
    beside it came up, whichever is later; alone, after its own ``timeout``."""
    assert patience_end(started=10.0, progress=None, timeout=200.0) == 210.0
    # the cloud works through the queue: the end follows the last server to come up
    assert patience_end(started=10.0, progress=500.0, timeout=200.0) == 700.0
    # one that came up before this server was awaited does not shorten its wait
    assert patience_end(started=10.0, progress=5.0, timeout=200.0) == 210.0
