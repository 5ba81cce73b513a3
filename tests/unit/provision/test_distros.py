"""Distribution differences are data: detection and install plans, per os-release."""

from __future__ import annotations

import pytest

from flotte.errors import ProvisionError, UsageError
from flotte.provision import distros
from flotte.provision.sessions import parse_os_release

OS_RELEASE = {
    "debian": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n',
    "ubuntu": "ID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\nUBUNTU_CODENAME=noble\n",
    "raspbian": "ID=raspbian\nID_LIKE=debian\nVERSION_CODENAME=bookworm\n",
    "rocky": 'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n',
    "almalinux": 'ID="almalinux"\nID_LIKE="rhel centos fedora"\n',
    "centos": 'ID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="9"\nNAME="CentOS Stream"\n',
    "fedora": "ID=fedora\nVERSION_ID=40\nVARIANT_ID=server\n",
    "fcos": 'ID=fedora\nVARIANT_ID=coreos\nPRETTY_NAME="Fedora CoreOS 40"\n',
    "rhel": 'ID="rhel"\nID_LIKE="fedora"\n',
    "mint": 'ID=linuxmint\nID_LIKE="ubuntu debian"\nUBUNTU_CODENAME=jammy\n',
    "plan9": 'ID=plan9\nPRETTY_NAME="Plan 9"\n',
}


@pytest.mark.parametrize(
    ("sample", "key"),
    [
        ("debian", "debian"),
        ("ubuntu", "ubuntu"),
        ("raspbian", "raspbian"),
        ("rocky", "el"),
        ("almalinux", "el"),
        ("centos", "el"),
        ("fedora", "fedora"),
        ("fcos", "fedora-coreos"),
        ("rhel", "rhel"),
        ("mint", "ubuntu"),  # through ID_LIKE
    ],
)
def test_detect(sample: str, key: str) -> None:
    distro = distros.detect(parse_os_release(OS_RELEASE[sample]))
    assert distro is not None and distro.key == key


def test_unknown_system() -> None:
    facts = parse_os_release(OS_RELEASE["plan9"])
    assert distros.detect(facts) is None
    assert distros.describe(facts) == "Plan 9"


def plan(sample: str, choice: str = "auto", machine: str = "x86_64") -> distros.InstallPlan:
    facts = parse_os_release(OS_RELEASE[sample])
    distro = distros.detect(facts)
    assert distro is not None
    return distros.install_plan(distro, choice, machine, facts)


def test_auto_picks_the_best_supported_way() -> None:
    assert plan("debian").packages == ("docker.io",) and plan("debian").setup == ""
    assert plan("ubuntu", machine="aarch64").method == "distro"
    assert plan("raspbian", machine="armv7l").packages == ("docker.io",)
    assert plan("fedora").packages == ("moby-engine",)
    rocky = plan("rocky")
    assert rocky.method == "upstream" and "docker-ce" in rocky.packages
    assert "download.docker.com/linux/centos/docker-ce.repo" in rocky.setup
    assert rocky.files == ("/etc/yum.repos.d/docker-ce.repo",)


def test_upstream_apt_repository_line() -> None:
    up = plan("ubuntu", "upstream", "aarch64")
    assert "[arch=arm64 signed-by=/etc/apt/keyrings/docker.asc]" in up.setup
    assert "https://download.docker.com/linux/ubuntu noble stable" in up.setup
    pi = plan("raspbian", "upstream", "armv6l")
    assert "[arch=armhf " in pi.setup and "/linux/raspbian bookworm" in pi.setup
    assert "/etc/apt/sources.list.d/docker.list" in pi.files


def test_what_cannot_be_done_says_why() -> None:
    with pytest.raises(ProvisionError, match="rpm-ostree"):
        plan("fcos")
    with pytest.raises(ProvisionError, match="--engine-install upstream"):
        plan("rhel", "distro")
    with pytest.raises(ProvisionError, match="armv6l"):
        plan("debian", machine="armv6l")
    with pytest.raises(UsageError, match="not one of auto, distro, upstream, skip"):
        plan("debian", "yes")


def test_every_distro_row_is_consistent() -> None:
    for d in distros.DISTROS:
        assert d.default in ("distro", "upstream", "none")
        if d.package_manager is not None:
            assert d.package_manager in distros.PACKAGE_MANAGERS
        if d.default == "distro":
            assert d.distro_packages
        if d.default == "upstream":
            assert d.upstream_repo
    for init in distros.INIT_SYSTEMS.values():
        assert all([init.start, init.stop, init.restart, init.is_active, init.kill])


def test_os_release_quoting() -> None:
    facts = parse_os_release("NAME=\"Debian GNU/Linux\"\n# comment\nID=debian\nBAD LINE\nX='a b'\n")
    assert facts == {"NAME": "Debian GNU/Linux", "ID": "debian", "X": "a b"}
