"""Operating-system differences as data: how each distribution gets a Docker engine.

Adding a distribution means adding a row to :data:`DISTROS` (and, for a new package
tool, to :data:`PACKAGE_MANAGERS`); no code path switches on a distribution's name.
``auto`` picks the way that is supported best on each system: the distribution's own
``docker.io`` on Debian-family systems (Debian, Ubuntu, Raspberry Pi OS, on amd64,
arm64 and armhf alike), Fedora's ``moby-engine``, Docker's upstream repository on the
RHEL family (which ships Podman instead), nothing on Fedora CoreOS (Docker is part of
the image, and packages are layered with rpm-ostree and a reboot).
"""

from __future__ import annotations

from dataclasses import dataclass

from flotte.errors import ProvisionError, UsageError

INSTALL_CHOICES = ("auto", "distro", "upstream", "skip")
UPSTREAM = "https://download.docker.com/linux"

# uname -m -> Debian architecture name (used in apt source lines)
DEB_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "armhf",
    "armv6l": "armhf",  # Raspberry Pi OS builds armhf for ARMv6 (Pi Zero/1)
    "ppc64le": "ppc64el",
    "s390x": "s390x",
}


@dataclass(frozen=True)
class PackageManager:
    """Shell commands of one package tool; ``{packages}`` is filled in."""

    name: str
    refresh: str
    install: str
    remove: str
    list_installed: str  # one installed package name per line
    repair: str  # finishes work a killed earlier run left half-done
    lock_busy: tuple[str, ...]  # output meaning "another process holds the lock"
    lock_files: tuple[str, ...]  # checked (fcntl locks in /proc/locks) before starting


PACKAGE_MANAGERS = {
    "apt": PackageManager(
        name="apt",
        refresh="apt-get update -qq",
        install=(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
            "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {packages}"
        ),
        remove="DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq {packages}",
        list_installed=(
            "dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' | awk '/^ii/ {print $2}'"
        ),
        repair="DEBIAN_FRONTEND=noninteractive dpkg --configure -a",
        lock_busy=(
            "Could not get lock",
            "Unable to acquire the dpkg frontend lock",
            "Unable to lock directory",
            "is another process using it",
        ),
        lock_files=(
            "/var/lib/dpkg/lock-frontend",
            "/var/lib/dpkg/lock",
            "/var/lib/apt/lists/lock",
            "/var/cache/apt/archives/lock",
        ),
    ),
    "dnf": PackageManager(
        name="dnf",
        refresh="true",
        install="dnf -y -q install {packages}",
        remove="dnf -y -q remove {packages}",
        list_installed="rpm -qa --qf '%{NAME}\\n'",
        repair="true",
        # dnf waits for its own lock; rpm's is reported this way when it cannot.
        lock_busy=("Waiting for process with pid", "can't create transaction lock"),
        lock_files=("/var/lib/rpm/.rpm.lock",),
    ),
}


@dataclass(frozen=True)
class Distro:
    """One family of systems, matched on /etc/os-release ``ID`` (then ``ID_LIKE``)."""

    key: str
    name: str
    ids: tuple[str, ...]
    package_manager: str | None  # None: the system is image-based (no package installs)
    default: str  # "distro", "upstream" or "none"
    distro_packages: tuple[str, ...] = ()
    upstream_repo: str | None = None  # path under download.docker.com/linux
    upstream_packages: tuple[str, ...] = (
        "docker-ce",
        "docker-ce-cli",
        "containerd.io",
    )
    variant: str | None = None  # os-release VARIANT_ID that must match
    arches: tuple[str, ...] = ("x86_64", "aarch64")
    note: str = ""


DISTROS: tuple[Distro, ...] = (
    # Fedora CoreOS first: it says ID=fedora too, and only VARIANT_ID tells them apart.
    Distro(
        key="fedora-coreos",
        name="Fedora CoreOS",
        ids=("fedora",),
        variant="coreos",
        package_manager=None,
        default="none",
        note="Docker ships in the image; add packages with rpm-ostree install and a reboot",
    ),
    Distro(
        key="debian",
        name="Debian",
        ids=("debian",),
        package_manager="apt",
        default="distro",
        distro_packages=("docker.io",),
        upstream_repo="debian",
        arches=("x86_64", "aarch64", "armv7l", "ppc64le", "s390x"),
        note="64-bit Raspberry Pi OS identifies itself as Debian",
    ),
    Distro(
        key="raspbian",
        name="Raspberry Pi OS",
        ids=("raspbian",),
        package_manager="apt",
        default="distro",
        distro_packages=("docker.io",),
        upstream_repo="raspbian",
        arches=("armv7l", "armv6l", "aarch64"),
    ),
    Distro(
        key="ubuntu",
        name="Ubuntu",
        ids=("ubuntu",),
        package_manager="apt",
        default="distro",
        distro_packages=("docker.io",),
        upstream_repo="ubuntu",
        arches=("x86_64", "aarch64", "armv7l", "ppc64le", "s390x"),
    ),
    Distro(
        key="fedora",
        name="Fedora",
        ids=("fedora",),
        package_manager="dnf",
        default="distro",
        distro_packages=("moby-engine",),
        upstream_repo="fedora",
    ),
    Distro(
        key="rhel",
        name="Red Hat Enterprise Linux",
        ids=("rhel",),
        package_manager="dnf",
        default="upstream",
        upstream_repo="rhel",
        arches=("x86_64", "aarch64", "s390x"),
        note="RHEL ships Podman, not Docker: Docker's own repository is used",
    ),
    Distro(
        key="el",
        name="Rocky Linux / AlmaLinux / CentOS Stream",
        ids=("rocky", "almalinux", "centos"),
        package_manager="dnf",
        default="upstream",
        upstream_repo="centos",
        note="these ship Podman, not Docker: Docker's own repository is used",
    ),
)

# Repository setup for Docker's upstream packages, per package tool.
UPSTREAM_SETUP = {
    "apt": r"""
set -e
{install_fetch}
install -m 0755 -d /etc/apt/keyrings
if command -v curl >/dev/null 2>&1; then curl -fsSL {base}/{repo}/gpg -o /etc/apt/keyrings/docker.asc
else wget -qO /etc/apt/keyrings/docker.asc {base}/{repo}/gpg; fi
chmod a+r /etc/apt/keyrings/docker.asc
echo "deb [arch={deb_arch} signed-by=/etc/apt/keyrings/docker.asc] {base}/{repo} {codename} stable" \
  > /etc/apt/sources.list.d/docker.list
""",
    "dnf": r"""
set -e
dnf -y -q install dnf-plugins-core
dnf config-manager --add-repo {base}/{repo}/docker-ce.repo 2>/dev/null \
  || dnf config-manager addrepo --from-repofile={base}/{repo}/docker-ce.repo
""",
}
UPSTREAM_FILES = {
    "apt": ("/etc/apt/keyrings/docker.asc", "/etc/apt/sources.list.d/docker.list"),
    "dnf": ("/etc/yum.repos.d/docker-ce.repo",),
}


@dataclass(frozen=True)
class InitSystem:
    """How to drive the docker service under one init system."""

    name: str
    start: str
    stop: str
    restart: str
    is_active: str
    enable: str
    kill: str
    log_tail: str  # the daemon's last log lines, for error reports


INIT_SYSTEMS = {
    "systemd": InitSystem(
        name="systemd",
        start="systemctl daemon-reload && systemctl start docker",
        # the socket too: otherwise the next client connection starts dockerd again
        stop="systemctl stop docker.socket docker.service 2>/dev/null || systemctl stop docker",
        restart="systemctl daemon-reload && systemctl restart docker",
        is_active="systemctl is-active --quiet docker",
        enable="systemctl is-enabled -q docker 2>/dev/null || systemctl enable -q docker || true",
        kill="systemctl kill -s KILL docker",
        log_tail="journalctl -u docker --no-pager -n 15 2>/dev/null",
    ),
    "sysv": InitSystem(
        name="sysv",
        start="service docker start",
        stop="service docker stop",
        # Debian's script exits 1 on restart once dockerd is stopped (set -e and a
        # missing pid file): start it then
        restart="service docker restart || service docker start",
        is_active="service docker status >/dev/null 2>&1",
        # update-rc.d is a Perl script: run it only when the links are missing
        enable=(
            "ls /etc/rc[2345].d/S*docker >/dev/null 2>&1 "
            "|| update-rc.d docker defaults >/dev/null 2>&1 || true"
        ),
        kill="kill -KILL $(cat /var/run/docker.pid) 2>/dev/null || pkill -KILL -x dockerd",
        log_tail="tail -n 15 /var/log/docker.log 2>/dev/null",
    ),
}


def detect(os_release: dict[str, str]) -> Distro | None:
    """The table row for a host's /etc/os-release, or None when flotte does not know it."""
    os_id = os_release.get("ID", "").lower()
    variant = os_release.get("VARIANT_ID", "").lower()
    like = os_release.get("ID_LIKE", "").lower().split()
    for candidate in [os_id, *like]:  # ID_LIKE lists the closest relative first
        for distro in DISTROS:
            if candidate in distro.ids and (distro.variant is None or distro.variant == variant):
                return distro
    return None


def describe(os_release: dict[str, str]) -> str:
    return os_release.get("PRETTY_NAME") or os_release.get("NAME") or "an unknown system"


def supported_names() -> str:
    return ", ".join(d.name for d in DISTROS)


@dataclass(frozen=True)
class InstallPlan:
    """What installing Docker on one host runs."""

    method: str  # "distro" or "upstream"
    manager: PackageManager
    setup: str  # repository setup ("" for distro packages)
    packages: tuple[str, ...]
    files: tuple[str, ...]  # files the setup creates (removed by --purge)
    description: str


def install_plan(
    distro: Distro, choice: str, machine: str, os_release: dict[str, str]
) -> InstallPlan:
    """How to install Docker on ``distro``; raise a clear error when it cannot be done."""
    if choice not in INSTALL_CHOICES:
        raise UsageError(f"--engine-install {choice!r} is not one of {', '.join(INSTALL_CHOICES)}")
    method = distro.default if choice == "auto" else choice
    if distro.package_manager is None or method == "none":
        raise ProvisionError(
            f"{distro.name} has no Docker engine and flotte cannot install one there",
            hint=distro.note or "install Docker, then use --engine-install skip",
        )
    if machine and machine not in distro.arches:
        raise ProvisionError(
            f"{distro.name} on {machine} is not a platform flotte installs Docker on",
            hint="install Docker yourself, then use --engine-install skip",
        )
    manager = PACKAGE_MANAGERS[distro.package_manager]
    if method == "distro":
        if not distro.distro_packages:
            raise ProvisionError(
                f"{distro.name} has no Docker package of its own",
                hint="use --engine-install upstream (Docker's repository) or auto",
            )
        return InstallPlan(
            method="distro",
            manager=manager,
            setup="",
            packages=distro.distro_packages,
            files=(),
            description=f"{' '.join(distro.distro_packages)} from {distro.name}'s packages",
        )
    if not distro.upstream_repo:
        raise ProvisionError(f"Docker publishes no packages for {distro.name}")
    codename = os_release.get("VERSION_CODENAME") or os_release.get("UBUNTU_CODENAME") or ""
    if manager.name == "apt" and not codename:
        raise ProvisionError(f"cannot tell which {distro.name} release this is (no codename)")
    setup = UPSTREAM_SETUP[manager.name].format(
        base=UPSTREAM,
        repo=distro.upstream_repo,
        codename=codename,
        deb_arch=DEB_ARCH.get(machine, machine),
        install_fetch=manager.install.format(packages="ca-certificates curl")
        if manager.name == "apt"
        else "",
    )
    return InstallPlan(
        method="upstream",
        manager=manager,
        setup=setup,
        packages=distro.upstream_packages,
        files=UPSTREAM_FILES[manager.name],
        description=f"{' '.join(distro.upstream_packages)} from {UPSTREAM}/{distro.upstream_repo}",
    )
