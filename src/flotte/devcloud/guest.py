"""The container image devcloud's servers run as (Docker-backed compute), built locally.

A Debian base (the local driver's ``flotte-base:bookworm``, made with debootstrap: no
Docker Hub here) plus Debian's cloud-init, openssh-server and the Docker engine. The
entry point runs cloud-init's four stages against a NoCloud seed the agent mounts at
``/var/lib/cloud/seed/nocloud`` (meta-data with the key pair, the server's user data),
starts sshd once users and keys exist, and keeps running; its output is the
server's console. The tag carries a hash of the recipe, so a changed recipe builds
a new image and an unchanged one is never rebuilt.
"""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING

from flotte.drivers.local.image import build_context
from flotte.errors import DriverError

if TYPE_CHECKING:
    import docker

GUEST_REPO = "flotte-devcloud-guest"

CLOUD_CFG = """\
# devcloud: seeds come from the agent (NoCloud); Docker configures the interfaces.
datasource_list: [ NoCloud, None ]
network: {config: disabled}
# minbase has C.UTF-8 only; generating en_US.UTF-8 fails and slows every first boot.
locale: C.UTF-8
"""

BOOT = r"""#!/bin/sh
# devcloud guest boot: cloud-init stages in order, sshd as soon as keys exist.
mkdir -p /run/sshd
cloud-init init --local
cloud-init init
[ -s /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A
/usr/sbin/sshd
cloud-init modules --mode=config
cloud-init modules --mode=final
echo "devcloud guest $(hostname) booted"
exec sleep infinity
"""

# Without CAP_SYS_RESOURCE (where --privileged is refused) Debian's /etc/init.d/docker
# dies on `ulimit -n`; make those lines non-fatal, now and whenever dpkg rewrites it.
FIX_ULIMIT = r"""#!/bin/sh
f=/etc/init.d/docker
[ -f "$f" ] && sed -i -E '/^[[:space:]]*ulimit /{/[|][|] true$/!s/$/ || true/}' "$f"
exit 0
"""

APT_HOOK = 'DPkg::Post-Invoke { "/usr/local/sbin/devcloud-fix-ulimit"; };\n'

DOCKERFILE = """FROM flotte-base:bookworm
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends cloud-init openssh-server sudo \\
      docker.io iptables iproute2 ca-certificates curl procps python3 \\
 && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_* \\
 && update-alternatives --set iptables /usr/sbin/iptables-legacy
COPY 99-devcloud.cfg /etc/cloud/cloud.cfg.d/99-devcloud.cfg
COPY devcloud-boot devcloud-fix-ulimit /usr/local/sbin/
COPY 99devcloud-ulimit /etc/apt/apt.conf.d/99devcloud-ulimit
RUN chmod 755 /usr/local/sbin/devcloud-boot /usr/local/sbin/devcloud-fix-ulimit \\
 && /usr/local/sbin/devcloud-fix-ulimit
ENTRYPOINT ["/usr/local/sbin/devcloud-boot"]
"""


def guest_image_tag() -> str:
    recipe = DOCKERFILE + BOOT + CLOUD_CFG + FIX_ULIMIT + APT_HOOK
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"{GUEST_REPO}:{digest}"


def _context() -> io.BytesIO:
    return build_context(
        [
            ("Dockerfile", DOCKERFILE, 0o644),
            ("devcloud-boot", BOOT, 0o755),
            ("99-devcloud.cfg", CLOUD_CFG, 0o644),
            ("devcloud-fix-ulimit", FIX_ULIMIT, 0o755),
            ("99devcloud-ulimit", APT_HOOK, 0o644),
        ]
    )


def ensure_guest_image(client: docker.DockerClient) -> str:
    """The guest image's tag, building it (once) when missing."""
    import docker.errors

    from flotte.drivers.local.image import build_base

    tag = guest_image_tag()
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    build_base(client)
    try:
        client.images.build(
            fileobj=_context(),
            custom_context=True,
            tag=tag,
            rm=True,
            labels={"flotte.devcloud": "guest"},
        )
    except docker.errors.BuildError as err:
        lines = [str(x.get("stream", x.get("error", ""))).strip() for x in err.build_log]
        detail = next((x for x in reversed(lines) if x), str(err))
        raise DriverError(f"building the devcloud guest image failed: {detail}") from err
    return tag
