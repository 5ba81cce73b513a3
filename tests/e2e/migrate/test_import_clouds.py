"""docker-machine's amazonec2 machines taken in: flotte drives exactly that instance.

The cloud is a real moto server reached through boto3; two instances run, docker-machine's
store names one. After the import ``ls``/``status`` ask the cloud, ``stop``/``start``
act on that instance, and ``rm`` terminates it and nothing else. The access keys
docker-machine wrote in config.json go to flotte's 0600 secret file, never the database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from test_import_cli import make_flotte

from fixtures.docker_machine import base_driver, make_tls, write_machine

AMI = "ami-785db401"  # in moto's built-in catalogue
ACCESS_KEY, SECRET_KEY = "AKIAIMPORTTEST000001", "s3cr3t-from-docker-machine-config"


def state(ec2: Any, instance_id: str) -> str:
    found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"]
    return str(found[0]["State"]["Name"])


def test_amazonec2_machine_rm_terminates_exactly_that_instance(
    moto_endpoint: str, tmp_path: Path
) -> None:
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    ours, other = (
        i["InstanceId"]
        for i in ec2.run_instances(ImageId=AMI, InstanceType="t2.micro", MinCount=2, MaxCount=2)[
            "Instances"
        ]
    )
    ip = "10.20.30.40"  # docker-machine's record; the engine is not reached here
    store = tmp_path / "docker-machine"
    driver = base_driver(
        store, "aws-box", ip,
        SSHUser="ubuntu", InstanceId=ours, Region="us-east-1", Endpoint=moto_endpoint,
        AccessKey=ACCESS_KEY, SecretKey=SECRET_KEY, AMI=AMI, InstanceType="t2.micro",
        KeyName="aws-box", PrivateIPAddress="172.31.0.9",
    )  # fmt: skip
    write_machine(store, "aws-box", "amazonec2", driver, make_tls(ip))
    flotte = make_flotte(tmp_path / "a")

    res = flotte("machine", "import", "--from-docker-machine", "-s", str(store))
    assert res.stdout.startswith("aws-box: imported: amazonec2 -> ec2"), res.stdout
    assert SECRET_KEY not in res.stdout + res.stderr
    assert SECRET_KEY.encode() not in (flotte.home / "flotte.db").read_bytes()
    secret_file = flotte.home / "secrets" / "machines" / "aws-box" / "options.json"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(secret_file.read_text())["ec2_secret_key"] == SECRET_KEY
    inspect = flotte("machine", "inspect", "aws-box").stdout
    assert SECRET_KEY not in inspect and json.loads(inspect)["record"]["provider_id"] == ours

    assert flotte("machine", "status", "aws-box").stdout.strip() == "Running"
    flotte("machine", "stop", "aws-box")
    assert state(ec2, ours) == "stopped" and state(ec2, other) == "running"
    assert flotte("machine", "status", "aws-box").stdout.strip() == "Stopped"
    flotte("machine", "start", "aws-box")
    assert state(ec2, ours) == "running"
    assert json.loads(flotte("machine", "inspect", "aws-box").stdout)["endpoint"]["tls_dir"]

    flotte("machine", "rm", "-y", "aws-box")
    assert state(ec2, ours) in ("shutting-down", "terminated")
    assert state(ec2, other) == "running"
    assert flotte("machine", "ls", "-q").stdout == ""
    assert not (flotte.home / "secrets" / "machines" / "aws-box").exists()
