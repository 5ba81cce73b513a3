"""Logs never carry secrets: ``--debug`` is flotte's own, library logs are redacted.

Real debug output is produced by real clients carrying planted secrets: botocore against
the moto server (access key id, secret key, session token, a key pair's private key),
the ``flotte`` CLI itself with ``--debug`` against moto; openstacksdk against devcloud
in tests/e2e/openstack/test_debug_logs.py.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotte import logs

KEY_ID = "AKIAPLANTED0KEY12345"
SECRET = "PlantedSecret/0123456789abcdefghijklmnopqrstu"
TOKEN = "PlantedSessionToken+xyz/0123456789=="
FLOTTE = str(Path(sys.executable).with_name("flotte"))
BOTOCORE_LINE = re.compile(r"^\S+ \S+ botocore\.\S+ DEBUG ", re.M)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """flotte's redacting handler, writing to a buffer, with botocore and openstack raised."""
    stream = io.StringIO()
    handler = logs.setup(debug=True, libraries=["botocore", "openstack", "keystoneauth"])
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)
        for name in ("flotte", "botocore", "openstack", "keystoneauth"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_botocore_debug_output_is_redacted(captured: io.StringIO, moto_endpoint: str) -> None:
    import boto3

    ec2 = boto3.client(
        "ec2",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        aws_session_token=TOKEN,
    )
    ec2.describe_instances()
    pair = ec2.create_key_pair(KeyName="planted")
    material = pair["KeyMaterial"]
    out = captured.getvalue()
    # what botocore logged, masked: the signed headers, the canonical request, the body
    assert "'X-Amz-Security-Token': b'***'" in out and "'Authorization': b'***" in out
    assert "x-amz-security-token:***" in out and "<keyMaterial>***</keyMaterial>" in out
    for planted in (KEY_ID, SECRET, TOKEN, material[40:90]):
        assert planted not in out
    assert "PRIVATE KEY" not in out.replace("PRIVATE KEY " + logs.MASK, "")


def test_debug_raises_flottes_loggers_only() -> None:
    logs.setup(debug=True, libraries=[])
    try:
        assert logging.getLogger("flotte.service").isEnabledFor(logging.DEBUG)
        for library in ("botocore", "urllib3", "openstack", "asyncssh", "docker"):
            assert not logging.getLogger(library).isEnabledFor(logging.DEBUG), library
    finally:
        logging.getLogger("flotte").setLevel(logging.NOTSET)


def test_the_cli_with_debug_prints_no_secret(moto_endpoint: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FLOTTE_HOME": str(tmp_path / "home"),
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": TOKEN,
    }
    args = [
        FLOTTE, "--debug", "machine", "create", "-d", "ec2", "--no-provision",
        "--ec2-endpoint-url", moto_endpoint, "--ec2-region", "eu-nowhere-1", "oops",
    ]  # fmt: skip
    plain = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert "eu-nowhere-1" in plain.stderr  # it did talk to the API
    assert not BOTOCORE_LINE.search(plain.stderr)
    libs = subprocess.run(
        args,
        env={**env, logs.LIBRARIES_ENV: "botocore"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert BOTOCORE_LINE.search(libs.stderr) and "x-amz-security-token:***" in libs.stderr
    for out in (plain.stdout + plain.stderr, libs.stdout + libs.stderr):
        for planted in (KEY_ID, SECRET, TOKEN):
            assert planted not in out


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("GET https://admin:S3cretPass@registry.lab/v2/", "https://admin:***@registry.lab/v2/"),
        ('{"auth": {"password": "S3cretPass", "user": "bob"}}', '"user": "bob"'),
        ("{'X-Auth-Token': b'S3cretPass', 'Accept': b'json'}", "'Accept': b'json'"),
        ("Authorization: Bearer S3cretPass", "Authorization: ***"),
        ("url?application_credential_secret=S3cretPass&region=fr", "&region=fr"),
        ("<SecretAccessKey>S3cretPass</SecretAccessKey>", "<SecretAccessKey>***<"),
        ("aws_secret_access_key = S3cretPass", "aws_secret_access_key = ***"),
        ("tests done: 5 nodes ready", "tests done: 5 nodes ready"),
    ],
)
def test_redaction_rules(line: str, kept: str) -> None:
    out = logs.redact(line)
    assert "S3cretPass" not in out
    assert kept in out


def test_registered_secrets_are_masked_anywhere() -> None:
    logs.add_secret("an-option-value-0xCAFE")
    assert logs.redact("ssh -i x --opt an-option-value-0xCAFE end") == "ssh -i x --opt *** end"


def test_large_output_is_redacted_quickly() -> None:
    import time

    blob = ("a.b-c_d." * 20_000) + " password=x " + ("Zz9/+" * 40_000)
    started = time.perf_counter()
    out = logs.redact(blob)
    assert time.perf_counter() - started < 2
    assert "password=***" in out
