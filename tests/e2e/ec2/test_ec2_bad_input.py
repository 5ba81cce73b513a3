"""Bad input: one clear line each, and nothing left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ec2_helpers import INSTALLATION, nothing_left

from fixtures.fault_proxy import Fault, ec2_action, ec2_error
from flotte.drivers.base import GroupSpec
from flotte.drivers.ec2 import options as cfg
from flotte.errors import AuthError, FlotteError, QuotaExceeded, UsageError
from flotte.models import NodeSpec, Owner, Role


def machine(name: str = "bad") -> tuple[GroupSpec, NodeSpec]:
    owner = Owner(machine=name, installation=INSTALLATION)
    return GroupSpec(name=name, owner=owner), NodeSpec(name, Role.MACHINE, owner, "ec2")


async def create(driver: Any) -> None:
    """What `flotte machine create` does, and its rollback when it fails."""
    group, spec = machine()
    shared: dict[str, Any] = {}
    try:
        await driver.check(group)
        shared = await driver.prepare(group)
        await driver.create(spec, shared)
    except FlotteError:
        await driver.release(group, shared)
        raise


def one_line(err: pytest.ExceptionInfo[FlotteError]) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        (
            {"ec2_endpoint_url": None, "ec2_region": "eu-nowhere-1"},
            UsageError,
            "unknown AWS region",
        ),
        ({"ec2_region": "xx-nowhere-9"}, UsageError, "unknown region 'xx-nowhere-9'"),
        ({"ec2_ami": "ami-00000000"}, UsageError, "AMI ami-00000000 not found"),
        ({"ec2_ami": "no-such-image-*"}, UsageError, "no AMI matches 'no-such-image-*'"),
        ({"ec2_instance_type": "t9.enormous"}, UsageError, "unknown instance type 't9.enormous'"),
        ({"ec2_instance_type": "huge"}, UsageError, "unknown instance type 'huge'"),
        ({"ec2_vpc_id": "vpc-0000000000"}, UsageError, "VPC vpc-0000000000 not found"),
        ({"ec2_subnet_id": "subnet-00000000"}, UsageError, "subnet subnet-00000000 not found"),
        ({"ec2_allowed_cidr": ["10.0.0.300/8"]}, UsageError, "is not a CIDR"),
        ({"ec2_keypair_name": "mine"}, UsageError, "needs --ec2-ssh-keypath"),
        ({"ec2_ssh_keypath": "/nonexistent/key"}, UsageError, "does not exist"),
        ({"ec2_root_size": 0}, UsageError, "--ec2-root-size"),
        ({"ec2_tags": ["novalue"]}, UsageError, "--ec2-tags"),
        ({"ec2_cloud": "azure"}, UsageError, "unknown --ec2-cloud"),
        (
            {"ec2_cloud": "outscale", "ec2_endpoint_url": None, "ec2_region": "eu-west-9"},
            UsageError,
            "unknown Outscale region",
        ),
        ({"ec2_profile": "nobody"}, AuthError, "nobody"),
    ],
)
async def test_bad_input_one_line_nothing_left(
    make_driver: Any, ec2: Any, options: dict[str, Any], error: type[FlotteError], words: str
) -> None:
    with pytest.raises(error) as err:
        await create(make_driver(**options))
    assert words in one_line(err)
    assert nothing_left(ec2)


async def test_missing_credentials(
    make_driver: Any, ec2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AuthError) as err:
        await create(make_driver())
    assert "no usable AWS credentials" in one_line(err)
    assert "--ec2-profile" in str(err.value)
    monkeypatch.undo()
    assert nothing_left(ec2)


def saved_keys(driver: Any) -> list[Path]:
    return sorted((driver.ctx.home / "ec2").rglob("*.json"))


@pytest.mark.parametrize("given", ["flag", "file"])
async def test_static_keys_are_kept_private_and_go_with_the_machine(
    make_driver: Any, ec2: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    secret = tmp_path / "secret"
    secret.write_text("the-secret-value\n")
    keys = (
        {"ec2_secret_key": "the-secret-value"}
        if given == "flag"
        else {"ec2_secret_key_file": str(secret)}
    )
    driver = make_driver(ec2_access_key="AKIATEST", **keys)
    group, spec = machine(f"keys-{given}")
    await driver.check(group)
    assert saved_keys(driver) == []  # nothing kept before the group exists
    shared = await driver.prepare(group)
    node = await driver.create(spec, shared)
    assert "the-secret-value" not in repr(shared) + repr(node)
    saved = Path(shared["credentials_file"])
    assert saved.stat().st_mode & 0o777 == 0o600
    assert "the-secret-value" in saved.read_text()
    # rm later, with the record only: the saved file is what authenticates.
    later = make_driver()
    later.ctx.options = {}
    await later.remove(node)
    await later.release(group, shared)
    assert saved_keys(driver) == []  # the keys go with the machine
    monkeypatch.undo()
    assert nothing_left(ec2)


async def test_keys_are_never_written_when_create_fails(
    make_driver: Any, ec2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    driver = make_driver(
        ec2_access_key="AKIAFAIL", ec2_secret_key="fail-secret", ec2_ami="ami-00000000"
    )
    with pytest.raises(UsageError):
        await create(driver)
    assert saved_keys(driver) == []
    monkeypatch.undo()
    assert nothing_left(ec2)


async def test_keys_from_the_environment(make_driver: Any, ec2: Any) -> None:
    """AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (set by the moto fixture): no flag, no file."""
    driver = make_driver()
    assert not {"ec2_access_key", "ec2_secret_key"} & set(driver.ctx.options)
    group, spec = machine("envkeys")
    await driver.check(group)
    shared = await driver.prepare(group)
    node = await driver.create(spec, shared)
    assert shared["credentials_file"] is None and saved_keys(driver) == []
    await driver.remove(node)
    await driver.release(group, shared)
    assert nothing_left(ec2)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"ec2_access_key": "AKIAX", "ec2_secret_key_file": "/nonexistent"}, "cannot read"),
        ({"ec2_access_key": "AKIAX", "ec2_secret_key_file": "/"}, "cannot read"),
        ({"ec2_access_key": "AKIAX"}, "needs its secret"),
        ({"ec2_secret_key": "s3cr3t"}, "needs its access key ID"),
    ],
)
async def test_bad_keys_one_line(
    make_driver: Any, ec2: Any, options: dict[str, Any], words: str
) -> None:
    with pytest.raises(UsageError) as err:
        await create(make_driver(**options))
    assert words in one_line(err)
    assert "s3cr3t" not in str(err.value)
    assert nothing_left(ec2)


async def test_instance_limit_exceeded(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any
) -> None:
    limit = Fault(
        400,
        ec2_error(
            "InstanceLimitExceeded",
            "You have requested more instances (21) than your current instance limit of 20",
        ),
        "text/xml",
        match=ec2_action("RunInstances"),
    )
    proxy = fault_proxy_factory(moto_endpoint, [limit])
    with pytest.raises(QuotaExceeded) as err:
        await create(make_driver(proxy.url))
    assert "InstanceLimitExceeded" in one_line(err)
    assert nothing_left(ec2)


async def test_security_group_rule_limit(make_driver: Any, ec2: Any) -> None:
    """moto enforces 60 rules per VPC security group, as AWS does by default."""
    cidrs = [f"198.51.100.{i}/32" for i in range(31)]  # 2 ports x 31 = 62 rules
    with pytest.raises(QuotaExceeded) as err:
        await create(make_driver(ec2_allowed_cidr=cidrs))
    assert "RulesPerSecurityGroupLimitExceeded" in one_line(err)
    assert nothing_left(ec2)  # the group made before the rules were refused is gone


async def test_public_address_detection_failure(
    make_driver: Any, ec2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fixtures.moto_server import free_port

    monkeypatch.setenv("FLOTTE_CHECKIP_URL", f"http://127.0.0.1:{free_port()}/")
    driver = make_driver()
    driver.ctx.options = {**driver.ctx.options, "ec2_allowed_cidr": []}
    with pytest.raises(UsageError) as err:
        await create(driver)
    assert "pass --ec2-allowed-cidr" in one_line(err)
    assert nothing_left(ec2)


def test_outscale_target_and_types() -> None:
    tgt = cfg.target({"ec2_cloud": "outscale", "ec2_region": "cloudgouv-eu-west-1"})
    assert tgt.endpoint_url == "https://fcu.cloudgouv-eu-west-1.outscale.com"
    inferred = cfg.target({"ec2_endpoint_url": "https://fcu.eu-west-2.outscale.com"})
    assert inferred.cloud == "outscale" and inferred.region == "eu-west-2"
    assert cfg.target({}).cloud == "aws"
    assert cfg.target({"ec2_region": "eu-west-3"}).endpoint_url is None
    assert cfg.valid_instance_type("outscale", "tinav5.c2r4p2")
    assert not cfg.valid_instance_type("outscale", "tinav5")
    assert cfg.defaults("outscale")["instance_type"] == "tinav5.c2r4p2"


def test_region_from_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "aws-config"
    config.write_text("[profile lab]\nregion = eu-west-3\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert cfg.target({"ec2_profile": "lab"}).region == "eu-west-3"
    assert cfg.target({"ec2_profile": "lab", "ec2_region": "eu-north-1"}).region == "eu-north-1"
    assert cfg.target({}).region == "us-east-1"
