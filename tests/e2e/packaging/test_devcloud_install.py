"""devcloud installs its services with uv when it is there, with pip otherwise: both
take the pins of the constraints file, and a package that cannot be installed is one
clear error. Real installs from PyPI (the peer) into a new venv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flotte.devcloud import install
from flotte.devcloud.layout import Layout
from flotte.errors import FlotteError

# An old release: an installer that ignored the constraints file would take the latest.
OLD_SIX = "1.15.0"


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
    pins = f"six=={OLD_SIX}\n".encode()
    monkeypatch.setattr(install, "data_file", lambda name: pins)
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
    assert version == OLD_SIX
    assert (layout.etc / "constraints.txt").read_bytes() == pins
    log = layout.log("pip").read_text()
    # Each installer says what it did in its own words: the log shows which one ran.
    assert ("Using Python" in log) == (installer == "uv"), log[-500:]


def test_a_package_that_cannot_be_installed_is_one_error(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    with pytest.raises(FlotteError) as err:
        install.pip_install(layout, ("flotte-no-such-package-3c1e",), "the test package")
    assert str(err.value) == f"pip install of the test package failed: see {layout.log('pip')}"


def test_pip_takes_over_when_uv_cannot_reach_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv reads neither pip.conf nor PIP_*: where only pip is told how to reach the
    packages (here, uv is sent to a closed port), pip installs them."""
    monkeypatch.delenv("FLOTTE_DEVCLOUD_INSTALLER", raising=False)
    monkeypatch.setenv("UV_DEFAULT_INDEX", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_NO_CACHE", "1")
    monkeypatch.setattr(install, "data_file", lambda name: f"six=={OLD_SIX}\n".encode())
    layout = _layout(tmp_path)
    install.pip_install(layout, ("six",), "six")
    log = layout.log("pip").read_text()
    assert "uv failed: installing with pip instead" in log, log[-800:]
    assert f"Successfully installed six-{OLD_SIX}" in log, log[-800:]
