"""How flotte's settings join an existing dockerd service: pure rules, checked here."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flotte.errors import ProvisionError, UsageError
from flotte.provision import dockerd_service as svc

SYSTEMCTL_CAT = """# /lib/systemd/system/docker.service
[Unit]
Description=Docker Application Container Engine

[Service]
Type=notify
EnvironmentFile=-/etc/default/docker
ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS
ExecReload=/bin/kill -s HUP $MAINPID

# /etc/systemd/system/docker.service.d/10-site.conf
[Service]
ExecStart=
ExecStart=/usr/bin/dockerd -H fd:// \\
    --data-root /srv/docker

# /etc/systemd/system/docker.service.d/50-flotte.conf
[Service]
ExecStart=
ExecStart=/usr/bin/dockerd -H fd:// --data-root /srv/docker -H tcp://0.0.0.0:2376
"""


def test_effective_execstart_ignores_flottes_own_dropin() -> None:
    assert (
        svc.parse_systemctl_cat(SYSTEMCTL_CAT)
        == "/usr/bin/dockerd -H fd:// --data-root /srv/docker"
    )
    only_unit = SYSTEMCTL_CAT.split("# /etc/systemd")[0]
    assert svc.parse_systemctl_cat(only_unit) == (
        "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS"
    )
    assert svc.parse_systemctl_cat("") is None


def test_dropin_keeps_the_units_command_and_escapes_specifiers() -> None:
    text = svc.systemd_dropin(
        "/usr/bin/dockerd -H fd:// --config-file /etc/docker/other.json",
        ["-H", "tcp://0.0.0.0:2376", "--log-opt=tag=%n x"],
        "m1",
    )
    assert "ExecStart=\nExecStart=/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2376" in text
    assert "'--log-opt=tag=%%n x'" in text
    assert "other.json" not in text
    assert "EnvironmentFile=-/etc/docker/flotte/dockerd.env" in text


def test_merge_keeps_host_settings_and_drops_what_flags_set() -> None:
    host = {
        "log-driver": "journald",
        "labels": ["site=a"],
        "hosts": ["unix:///var/run/docker.sock"],
        "data-root": "/srv/docker",
        "containerd": "/run/containerd/containerd.sock",
    }
    flotte = {"tls": True, "labels": ["lab=x", "site=a"], "hosts": ["tcp://0.0.0.0:2376"]}
    argv = svc.split_command(
        "/usr/bin/dockerd -H fd:// --containerd=/run/c.sock --data-root /srv/docker",
        "host1",
        quoted=True,
    )
    merged, hosts = svc.merge_config(host, flotte, argv)
    assert merged == {"log-driver": "journald", "labels": ["site=a", "lab=x"], "tls": True}
    assert hosts == ["unix:///var/run/docker.sock"]


def test_listen_flags() -> None:
    assert svc.listen_flags(["dockerd", "-H", "fd://"], []) == ["-H", svc.TCP_HOST]
    assert svc.listen_flags([], []) == ["-H", svc.DEFAULT_UNIX, "-H", svc.TCP_HOST]
    assert svc.listen_flags([], ["unix:///run/d.sock"]) == [
        "-H",
        "unix:///run/d.sock",
        "-H",
        svc.TCP_HOST,
    ]
    assert svc.listen_flags(["-H", svc.TCP_HOST, "-Hfd://"], []) == []


def test_flag_keys_and_hosts() -> None:
    argv = [
        "dockerd",
        "-H",
        "fd://",
        "--host=unix:///x",
        "-D",
        "--label",
        "a=b",
        "--log-level=info",
    ]
    assert {"hosts", "debug", "labels", "log-level"} <= svc.flag_keys(argv)
    assert svc.hosts_in(argv) == ["fd://", "unix:///x"]
    assert svc.config_file_in(["dockerd", "--config-file=/x.json"]) == "/x.json"


def test_bad_host_config_is_one_clear_error() -> None:
    with pytest.raises(ProvisionError, match="not valid JSON"):
        svc.load_host_config(b"{oops")
    with pytest.raises(ProvisionError, match="not a JSON object"):
        svc.load_host_config(b"[1]")
    assert svc.load_host_config(None) == {} == svc.load_host_config(b"  \n")


def test_sysv_block_refuses_what_the_init_script_would_split() -> None:
    with pytest.raises(UsageError, match="cannot be passed through /etc/default/docker"):
        svc.sysv_block(["--log-opt", "tag=a b"], "m1")


lines = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).filter(
        lambda s: not s.startswith("#")
    ),
    max_size=6,
)


@given(lines)
def test_block_is_added_once_and_removed_exactly(original_lines: list[str]) -> None:
    original = "".join(f"{ln}\n" for ln in original_lines)
    block = svc.sysv_block(["-H", "tcp://0.0.0.0:2376"], "m1")
    once = svc.with_block(original, block)
    assert svc.with_block(once, block) == once  # re-running does not stack blocks
    assert svc.strip_block(once) == original  # rm gives the file back as it was
    assert once.count(svc.BLOCK_BEGIN) == 1


def test_a_command_line_with_an_unbalanced_quote_is_one_line_naming_the_host() -> None:
    with pytest.raises(ProvisionError, match=r"^rack1: cannot read the docker service's command"):
        svc.split_command('/usr/bin/dockerd --label "site=a', "rack1", quoted=True)
    # Debian's init script splits $DOCKER_OPTS on blanks without removing quotes
    assert svc.split_command("--label=it's -D", "rack1", quoted=False) == ["--label=it's", "-D"]


def test_a_process_command_line_comes_back_exactly() -> None:
    argv = ["/usr/bin/dockerd", "--label=it's", "--label=a b", 'x"y', "\\n"]
    printed = "\x1f".join(argv) + "\x1f"  # what tr '\0' '\037' makes of /proc/PID/cmdline
    assert svc.proc_cmdline(printed) == argv


def test_list_settings_the_unit_sets_as_flags_go_as_flags_too() -> None:
    flotte = {"labels": ["lab=x"], "insecure-registries": ["reg:5000"], "tls": True}
    unit = ["/usr/sbin/dockerd", "--label=owner=o'brien", "-p", "/var/run/docker.pid"]
    assert svc.list_flags(flotte, unit) == ["--label=lab=x"]
    merged, _ = svc.merge_config({}, flotte, [*unit, *svc.list_flags(flotte, unit)])
    assert "labels" not in merged and merged["insecure-registries"] == ["reg:5000"]
