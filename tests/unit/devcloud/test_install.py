"""devcloud installs its services with uv when it is there, with pip otherwise: both
take the pins of the constraints file, and a package that cannot be installed is one
clear error. Real installs from PyPI into a new venv (a small pinned package)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flotte.devcloud import install
from flotte.devcloud.layout import Layout
from flotte.errors import FlotteError


def _pinned(name: str) -> str:
    for line in install.data_file("constraints.txt").decode().splitlines():
        if line.lower().startswith(f"{name}==".lower()):
            return line.split("==", 1)[1].split()[0]
    raise AssertionError(f"{name} is not pinned")


def _layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "devcloud")
    layout.logs.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "venv", str(layout.venv)], check=True)
    return layout


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_the_services_venv_gets_the_pinned_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installer: str
) -> None:
    monkeypatch.setenv("FLOTTE_DEVCLOUD_INSTALLER", installer)
    if installer == "uv":
        assert install._uv(), "uv is in the test extra (flotte[devcloud])"
    layout = _layout(tmp_path)
    install.pip_install(layout, ("six",), "six")
    version = subprocess.run(
        [str(layout.bin("python")), "-c", "import six; print(six.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == _pinned("six")
    log = layout.log("pip").read_text()
    # Each installer says what it did in its own words: the log shows which one ran.
    assert ("Using Python" in log) == (installer == "uv"), log[-500:]


def test_a_package_that_cannot_be_installed_is_one_error(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    with pytest.raises(FlotteError) as err:
        install.pip_install(layout, ("flotte-no-such-package-3c1e",), "the test package")
    assert str(err.value) == f"pip install of the test package failed: see {layout.log('pip')}"
