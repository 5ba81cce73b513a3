"""Where a fault campaign runs: one class per driver, each with its own fault kinds.

A target knows the flags a create command needs, the secrets it plants in the standard
places, how to list what exists with a client independent of flotte (the fake cloud's
file, boto3 against moto, the Docker SDK), and how to inject its faults. The fixtures of
``tests/fixtures`` are used as libraries (moto server, fault proxy, sshd test hosts,
the local engine), never copied.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors

from flotte.models import CLUSTER_KEY, OWNER_KEY

TESTS = Path(__file__).resolve().parents[1] / "tests"
for _path in (TESTS, TESTS / "e2e" / "ec2"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# the default kill horizon (seconds after the start) of a driver's commands
KILL = "kill"


@dataclass
class Resource:
    kind: str
    name: str
    tags: dict[str, str]
    launch: tuple[Any, Any] | None = None  # EC2: (ClientToken, AmiLaunchIndex)


@dataclass
class Armed:
    """A fault ready to hit one command: extra flags, and what to do while it runs."""

    name: str
    flags: list[str] = field(default_factory=list)
    kill_at: float | None = None  # SIGKILL the command this many seconds after its start
    during_at: float | None = None  # call ``during`` this many seconds after its start
    during: Callable[[], None] | None = None


class Target:
    """The fake driver: a cloud in a file (``FLOTTE_FAKE_DIR``), fast, no engine."""

    name = "fake"
    node_kind = "node"

    def node_name(self, r: Resource, home: Path) -> str:
        """The node a resource is: its node mark, else its name."""
        return r.tags.get("flotte:node", r.name)

    horizon = 2.0  # seconds: faults land within this time after a command starts
    op_horizons: dict[str, float] = {}  # shorter ones, for operations that take less
    op = ""  # the operation of the run being armed
    provision = False
    exclusive = False  # True: one run at a time (--jobs 1)
    faults: tuple[str, ...] = (KILL, "fake_fail", "fake_quota", "fake_latency")
    preload: tuple[str, ...] = ()

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.cloud_dir = workdir / "fake-cloud"

    # -- the environment of every command ---------------------------------------------
    def secrets(self, token: str) -> dict[str, str]:
        """Planted secrets, by what they are; every one must stay out of sight."""
        return {
            "OS_PASSWORD": f"osPw{token}",
            "OS_APPLICATION_CREDENTIAL_SECRET": f"osAc{token}",
            "AWS_SECRET_ACCESS_KEY": f"awsSk{token}",
            "AWS_SESSION_TOKEN": f"awsSt{token}",
        }

    def env(
        self, home: Path, secrets: dict[str, str], rng: random.Random | None = None
    ) -> dict[str, str]:
        """The run's environment; ``rng`` (seeded by the run) picks among ways to give it.

        An openrc and an AWS environment sourced by the user, for another cloud: a
        command on this driver must not pick any of them up."""
        return {"FLOTTE_FAKE_DIR": str(self.cloud_dir), **secrets}

    def create_flags(self) -> list[str]:
        return ["--fake-latency", "0.05"]

    # -- what exists, seen from outside flotte ----------------------------------------
    def inventory(self, installation: str) -> list[Resource]:
        path = self.cloud_dir / "cloud.json"
        if not path.exists():
            return []
        data = json.loads(path.read_text())
        return [
            Resource(r["kind"], r["name"], r["tags"])
            for r in data["resources"].values()
            if r["tags"].get("flotte:owner") == installation
        ]

    # -- faults -------------------------------------------------------------------------
    def span(self) -> float:
        """How long after its start the command of this run may be hit."""
        return self.op_horizons.get(self.op, self.horizon)

    def arm(self, fault: str, rng: random.Random, creates: bool, cluster: str) -> Armed:
        if fault == "fake_fail" and creates:
            return Armed(fault, ["--fake-fail", f"{cluster}-*-{rng.randrange(3)}"])
        if fault == "fake_quota" and creates:
            return Armed(fault, ["--fake-quota", str(rng.randrange(1, 4))])
        if fault == "fake_latency" and creates:
            return Armed(fault, ["--fake-latency", f"{rng.uniform(0.1, 0.6):.2f}"])
        return Armed(KILL, kill_at=rng.uniform(0.0, self.span()))

    def disarm(self) -> None:
        pass

    def injected(self) -> int:
        """API faults injected so far (a proxy's count): did a run's fault land?"""
        return 0

    def recover(self) -> None:
        """After a run the harness could not finish: make the next one possible."""

    def run_guard(self) -> contextlib.AbstractContextManager[object]:
        """Held around each run: what the peer must not change meanwhile."""
        return contextlib.nullcontext()

    def outage_since(self, since: float) -> str:
        """The peer was down at some time after ``since`` (monotonic): what was seen."""
        return ""

    def cleanup(self, installation: str) -> None:
        """After a run's checks, delete what it left (where leaks would pile up)."""

    def node_count(self, installation: str, scope_key: str, scope: str) -> int:
        return sum(
            1
            for r in self.inventory(installation)
            if r.kind == self.node_kind and r.tags.get(scope_key) == scope
        )

    def close(self) -> None:
        pass


class Ec2Target(Target):
    """EC2 on a moto server behind the fault proxy (429, 500, 503, lost answers, resets,
    latency)."""

    name = "ec2"
    node_kind = "instance"
    horizon = 4.0
    faults = (KILL, "api_429", "api_500", "api_503", "api_lost", "api_reset", "api_latency")
    preload = ("flotte.drivers.ec2",)

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        import boto3

        from fixtures.fault_proxy import FaultProxy
        from fixtures.moto_server import start_moto

        self.moto, self.moto_url = start_moto(log=workdir / "moto.log")
        self.proxy = FaultProxy(self.moto_url, seed=None).start()
        self.client = boto3.client(
            "ec2",
            region_name="us-east-1",
            endpoint_url=self.moto_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def env(
        self, home: Path, secrets: dict[str, str], rng: random.Random | None = None
    ) -> dict[str, str]:
        # The EC2 secret key comes from a profile in an AWS credentials file; the OpenStack
        # ones are an unrelated openrc in the environment.
        creds = home.parent / "aws-credentials"
        creds.write_text(
            "[fz]\naws_access_key_id = AKIAFAULTCAMPAIGN0001\n"
            f"aws_secret_access_key = {secrets['AWS_SECRET_ACCESS_KEY']}\n"
        )
        creds.chmod(0o600)
        return {
            "AWS_SHARED_CREDENTIALS_FILE": str(creds),
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_PROFILE": "fz",
            "AWS_EC2_METADATA_DISABLED": "true",
            "FLOTTE_EC2_POLL": "0.1",
            "OS_PASSWORD": secrets["OS_PASSWORD"],
            "OS_APPLICATION_CREDENTIAL_SECRET": secrets["OS_APPLICATION_CREDENTIAL_SECRET"],
        }

    def secrets(self, token: str) -> dict[str, str]:
        return {k: v for k, v in super().secrets(token).items() if k != "AWS_SESSION_TOKEN"}

    def create_flags(self) -> list[str]:
        from ec2_helpers import ec2_flags

        return list(ec2_flags(self.proxy.url))

    def inventory(self, installation: str) -> list[Resource]:
        from ec2_helpers import flotte_resources

        found = flotte_resources(self.client, installation)
        out = [Resource(kind.rstrip("s"), rid, {}) for kind, ids in found.items() for rid in ids]
        if found["instances"]:
            res = self.client.describe_instances(InstanceIds=found["instances"])
            for r in res["Reservations"]:
                for i in r["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                    for item in out:
                        if item.name == i["InstanceId"]:
                            item.tags = tags
                            item.launch = (i.get("ClientToken"), i.get("AmiLaunchIndex"))
        return out

    def node_name(self, r: Resource, home: Path) -> str:
        """Nodes launched together carry no name tag: the launch journal names them."""
        from flotte.config import paths
        from flotte.drivers.ec2.journal import Journal, node_of
        from flotte.models import Owner

        if "flotte:node" in r.tags or r.launch is None:
            return super().node_name(r, home)
        owner = Owner.from_tags(r.tags)
        entries = Journal(paths(home).machines).entries(owner)
        token, index = r.launch
        return node_of({"ClientToken": token, "AmiLaunchIndex": index}, entries) or r.name

    def arm(self, fault: str, rng: random.Random, creates: bool, cluster: str) -> Armed:
        from fixtures.fault_proxy import Fault, ec2_error, reset, server_error, throttling

        rate = rng.uniform(0.1, 0.4)
        mutating = ("Run", "Terminate", "Create", "Delete", "Import", "Authorize")

        def acts(req: Any) -> bool:
            return str(req.param("Action") or "").startswith(mutating)

        if fault == "api_429":
            self.proxy.set_faults(
                [Fault(429, ec2_error("Throttling", "Rate exceeded", 429), "text/xml", rate=rate)]
            )
        elif fault == "api_500":
            self.proxy.set_faults([server_error(rate)])
        elif fault == "api_503":
            self.proxy.set_faults([throttling(rate)])
        elif fault == "api_lost":
            self.proxy.set_faults([server_error(rate, after=True, match=acts)])
        elif fault == "api_reset":
            # Before forwarding on any call, or after the cloud acted on a mutating one.
            after = rng.random() < 0.5
            self.proxy.set_faults([reset(rate, after=after, match=acts if after else None)])
        elif fault == "api_latency":
            self.proxy.latency = rng.uniform(0.05, 0.3)
        else:
            return Armed(KILL, kill_at=rng.uniform(0.0, self.span()))
        # an API fault may also come with a kill, as a user's ^C after a slow answer
        kill_at = rng.uniform(0.0, self.span() * 2) if rng.random() < 0.3 else None
        return Armed(fault, kill_at=kill_at)

    def disarm(self) -> None:
        self.proxy.set_faults([])
        self.proxy.latency = 0.0

    def injected(self) -> int:
        return sum(self.proxy.stats.injected.values())

    def close(self) -> None:
        self.proxy.stop()
        self.moto.terminate()
        with contextlib.suppress(Exception):
            self.moto.wait(10)


class LocalTarget(Target):
    """Local Docker: nodes are containers; a fault may kill a node's dockerd."""

    name = "local"
    node_kind = "container"
    horizon = 20.0
    provision = True
    faults = (KILL, "dockerd_killed")
    preload = ("flotte.drivers.local",)

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        from fixtures.local import start_dockerd
        from flotte.drivers.local.image import ensure_node_image

        self.docker = start_dockerd()
        ensure_node_image(self.docker)

    def env(
        self, home: Path, secrets: dict[str, str], rng: random.Random | None = None
    ) -> dict[str, str]:
        return {"DOCKER_CONFIG": str(home.parent / "docker"), **secrets}

    def create_flags(self) -> list[str]:
        return []

    def inventory(self, installation: str) -> list[Resource]:
        from fixtures.local import labelled

        out = []
        for item in labelled(self.docker, {OWNER_KEY: installation}):
            kind, _, name = item.partition(" ")
            tags: dict[str, str] = {}
            if kind == "container":
                with contextlib.suppress(Exception):
                    tags = dict(self.docker.containers.get(name).labels)
            out.append(Resource(kind, name, tags))
        return out

    def arm(self, fault: str, rng: random.Random, creates: bool, cluster: str) -> Armed:
        if fault == "dockerd_killed":
            at = rng.uniform(0.0, self.span())

            def kill_a_dockerd() -> None:
                nodes = self.docker.containers.list(
                    ignore_removed=True,
                    filters={"label": f"{CLUSTER_KEY}={cluster}", "status": "running"},
                )
                if nodes:
                    # the command under test may remove the node meanwhile (a rollback):
                    # then there is no dockerd left to kill, which is no harness error
                    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                        rng.choice(nodes).exec_run(["sh", "-c", "pkill -9 dockerd || true"])

            return Armed(fault, during_at=at, during=kill_a_dockerd)
        return Armed(KILL, kill_at=rng.uniform(0.0, self.span()))


class SshTarget(LocalTarget):
    """Existing hosts over SSH (sshd test hosts); a fault drops the SSH connections."""

    name = "ssh"
    node_kind = "host"
    horizon = 20.0
    # a machine on a host with Docker takes about 4 s here: most kills would miss it
    op_horizons = {"machine_create": 6.0, "machine_rm": 5.0}
    faults = (KILL, "ssh_dropped")
    preload = ("flotte.drivers.ssh",)

    def __init__(self, workdir: Path) -> None:
        Target.__init__(self, workdir)
        import fixtures.sshd_hosts as sshd

        self._lab_cm = sshd.lab(Path(tempfile.mkdtemp(dir=workdir)))
        self.lab = self._lab_cm.__enter__()
        self.docker = self.lab.client
        self.hosts = [self.lab.start("docker") for _ in range(3)]

    def env(
        self, home: Path, secrets: dict[str, str], rng: random.Random | None = None
    ) -> dict[str, str]:
        return {
            "DOCKER_CONFIG": str(home.parent / "docker"),
            "FLOTTE_SSH_KEY": str(self.lab.key),
            **secrets,
        }

    def host_flags(self, count: int) -> list[str]:
        return ["--hosts", ",".join(h.ip for h in self.hosts[:count])]

    def create_flags(self) -> list[str]:
        return ["--ssh-key", str(self.lab.key)]

    def inventory(self, installation: str) -> list[Resource]:
        """What flotte left on the hosts: its marks and a TLS engine of its own."""
        out = []
        for host in self.hosts:
            marks = host.sh("cat /etc/docker/flotte/owner.json 2>/dev/null || true").strip()
            if marks and installation in marks:
                tags = {"flotte:owner": installation}
                with contextlib.suppress(ValueError):
                    data = json.loads(marks)
                    if isinstance(data, dict):
                        # flotte:cluster... today; cluster... in files of older versions
                        for key in ("cluster", "machine", "node"):
                            value = data.get(f"flotte:{key}") or data.get(key)
                            if value:
                                tags[f"flotte:{key}"] = str(value)
                out.append(Resource("host", host.ip, tags))
        return out

    def arm(self, fault: str, rng: random.Random, creates: bool, cluster: str) -> Armed:
        if fault == "ssh_dropped":
            at = rng.uniform(0.0, self.span())

            def drop() -> None:
                for host in self.hosts:
                    # sessions only: the listener is PID 1 of the test host ("sshd: ...
                    # [listener]" too); killing it stopped the host for the rest of a
                    # campaign (197 of 200 runs lost on 1 Dec)
                    host.sh(
                        "for p in $(pgrep -f 'sshd: '); do [ $p = 1 ] || kill -9 $p; done; true",
                        check=False,
                    )

            return Armed(fault, during_at=at, during=drop)
        return Armed(KILL, kill_at=rng.uniform(0.0, self.span()))

    def close(self) -> None:
        self._lab_cm.__exit__(None, None, None)


TARGETS: dict[str, type[Target]] = {
    "fake": Target,
    "ec2": Ec2Target,
    "local": LocalTarget,
    "ssh": SshTarget,
}


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()
