"""Shell completion: a real bash completes ``flotte machine rm <TAB>`` from the state."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flotte.models import EngineOptions
from flotte.specs import ClusterSpec, TemplateSpec, default_groups, machine_spec
from flotte.state.store import Store

BIN = Path(sys.executable).parent


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An installation with two machines, a cluster and a template."""
    home = tmp_path / "home"
    store = Store.at(home / "flotte.db")
    for name in ("web-1", "web-2", "db"):
        store.add_machine(machine_spec(name, "ssh", {}, EngineOptions()), "ready")
    lab = ClusterSpec(name="lab", driver="local", nodegroups=default_groups(1, 0))
    store.add_cluster(lab, "CREATE_COMPLETE")
    store.add_template("small", TemplateSpec(coe="swarm", driver="local"))
    store.close()
    return home


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTTE_")}
    env.update(FLOTTE_HOME=str(home), PATH=f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}")
    return env


BASH = r"""
set -e
eval "$(flotte completion bash)"
complete -p flotte
try() {  # the words typed so far, the last one being completed
  COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()
  _flotte_completion flotte "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
  echo "$*| ${COMPREPLY[*]}"
}
try flotte machine rm ""
try flotte machine rm web
try flotte machine inspect d
try flotte cluster delete ""
try flotte cluster create x --template ""
try flotte machine create -d ""
try flotte template show ""
try flotte machine create ""
try flotte mach
"""


def test_bash_completes_names_from_the_state(home: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    res = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH],
        capture_output=True,
        text=True,
        env=env_for(home),
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("complete -o nosort -F _flotte_completion flotte")
    got = dict(line.split("| ", 1) for line in lines[1:])
    assert got["flotte machine rm "].split() == ["db", "web-1", "web-2"]
    assert got["flotte machine rm web"].split() == ["web-1", "web-2"]
    assert got["flotte machine inspect d"].split() == ["db"]
    assert got["flotte cluster delete "].split() == ["lab"]
    assert got["flotte cluster create x --template "].split() == ["small"]
    assert {"local", "ssh", "openstack", "ec2"} <= set(got["flotte machine create -d "].split())
    assert got["flotte template show "].split() == ["small"]
    assert got["flotte machine create "] == ""  # a new name: nothing to offer
    assert got["flotte mach"].split() == ["machine"]
    assert res.stderr == ""


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_protocols(home: Path, shell: str) -> None:
    script = subprocess.run(
        [str(BIN / "flotte"), "completion", shell],
        capture_output=True, text=True, env=env_for(home), check=True,
    ).stdout  # fmt: skip
    assert "_FLOTTE_COMPLETE" in script
    env = env_for(home) | {
        "_FLOTTE_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": "flotte machine rm ",
        "COMP_CWORD": "3" if shell == "zsh" else "",
    }
    res = subprocess.run([str(BIN / "flotte")], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert {"db", "web-1", "web-2"} <= set(res.stdout.replace(",", "\n").split())


def test_no_state_completes_nothing_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "none"
    env = env_for(home) | {
        "_FLOTTE_COMPLETE": "bash_complete",
        "COMP_WORDS": "flotte machine rm ",
        "COMP_CWORD": "3",
    }
    res = subprocess.run([str(BIN / "flotte")], capture_output=True, text=True, env=env)
    assert res.returncode == 0 and res.stdout.strip() == "" and res.stderr == ""
    assert not home.exists()


def test_completion_needs_a_known_shell(home: Path) -> None:
    env = env_for(home) | {"SHELL": "/bin/tcsh"}
    res = subprocess.run(
        [str(BIN / "flotte"), "completion"], capture_output=True, text=True, env=env
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "Error: give the shell: bash, zsh or fish (see 'flotte completion --help')"
    ]
