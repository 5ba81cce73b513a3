"""The node image of the local driver, built on this machine without Docker Hub.

A base image comes from, in order: one already present, ``debootstrap`` (Debian's
minimal system from the machine's own package mirror, then ``docker import``), or a pull
of ``debian:bookworm-slim`` where a registry is reachable. The node image adds the
Docker engine, sshd and a small entry point to it. Tags carry a hash of the recipe, so a
changed recipe builds a new image and an unchanged one is never rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from flotte.errors import DriverError

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

BASE_IMAGE = "flotte-base:bookworm"
NODE_REPO = "flotte-node"
SUITE = "bookworm"

# The entry point waits for flotte to drop the engine's files (certificates signed for
# the address the container got) and then /run/flotte-go, and runs dockerd in the
# foreground. /run is a fresh tmpfs at every boot, so a restarted node never serves a
# certificate flotte has not checked against its new address.
ENTRYPOINT = r"""#!/bin/sh
set -eu
conf=/etc/docker/flotte
mkdir -p /run/sshd
[ -s /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
/usr/sbin/sshd -o HostKey=/etc/ssh/ssh_host_ed25519_key
while [ ! -e /run/flotte-go ]; do sleep 0.02; done
if [ -s "$conf/dockerd.env" ]; then set -a; . "$conf/dockerd.env"; set +a; fi
exec dockerd --config-file "$conf/daemon.json" $(cat "$conf/dockerd.flags" 2>/dev/null)
"""

DOCKERFILE = f"""FROM {BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends docker.io openssh-server iptables \\
      ca-certificates procps iproute2 curl \\
 && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_* \\
 && update-alternatives --set iptables /usr/sbin/iptables-legacy \\
 && mkdir -p /root/.ssh /etc/docker/flotte && chmod 700 /root/.ssh
COPY flotte-node /usr/local/bin/flotte-node
RUN chmod 755 /usr/local/bin/flotte-node
ENTRYPOINT ["/usr/local/bin/flotte-node"]
"""


def node_image_tag() -> str:
    digest = hashlib.sha256((DOCKERFILE + ENTRYPOINT).encode()).hexdigest()[:12]
    return f"{NODE_REPO}:{digest}"


def _has_image(client: docker.DockerClient, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _debian_mirror() -> str:
    """The mirror this machine's apt already uses, so debootstrap needs no new network."""
    for source in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if source.exists():
            for line in source.read_text().splitlines():
                line = line.strip()
                if line.startswith("URIs:"):
                    return line.split()[1]
                if line.startswith("deb ") and "security" not in line:
                    return line.split()[1]
    return "http://deb.debian.org/debian"


def build_base(client: docker.DockerClient) -> None:
    """Make ``flotte-base:bookworm`` with debootstrap, or pull a slim Debian instead."""
    if _has_image(client, BASE_IMAGE):
        return
    if shutil.which("debootstrap"):
        with tempfile.TemporaryDirectory(prefix="flotte-rootfs-") as root:
            log.info("debootstrap %s into %s", SUITE, root)
            proc = subprocess.run(
                ["debootstrap", "--variant=minbase", SUITE, root, _debian_mirror()],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
                raise DriverError(f"debootstrap failed: {' '.join(tail)}")
            tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
            assert tar.stdout is not None
            imp = subprocess.run(
                ["docker", "import", "-", BASE_IMAGE], stdin=tar.stdout, capture_output=True
            )
            tar.wait()
            if imp.returncode != 0:
                raise DriverError(f"docker import failed: {imp.stderr.decode().strip()}")
        return
    import docker.errors

    try:
        image = client.images.pull("debian", tag="bookworm-slim")
    except docker.errors.APIError as err:
        raise DriverError(
            "cannot make the node base image: no debootstrap and no registry",
            hint="install debootstrap (apt-get install debootstrap) and retry",
        ) from err
    image.tag(BASE_IMAGE)


def build_context(files: list[tuple[str, str, int]]) -> io.BytesIO:
    """A ``docker build`` context holding ``(name, text, mode)`` files, in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text, mode in files:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def ensure_node_image(client: docker.DockerClient) -> str:
    """Return the node image's tag, building it (once) when missing."""
    tag = node_image_tag()
    if _has_image(client, tag):
        return tag
    build_base(client)
    import docker.errors

    log.info("building %s", tag)
    try:
        client.images.build(
            fileobj=build_context(
                [("Dockerfile", DOCKERFILE, 0o644), ("flotte-node", ENTRYPOINT, 0o755)]
            ),
            custom_context=True,
            tag=tag,
            rm=True,
            labels={"flotte": "node"},
        )
    except docker.errors.BuildError as err:
        lines = [str(x.get("stream", x.get("error", ""))).strip() for x in err.build_log]
        detail = next((x for x in reversed(lines) if x), str(err))
        raise DriverError(f"building the node image failed: {detail}") from err
    return tag
