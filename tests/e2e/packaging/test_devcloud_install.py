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


def _venv_says(layout: Layout, code: str) -> str:
    """What ``code`` prints, run by the services' venv."""
    return subprocess.run(
        [str(layout.bin("python")), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


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
    assert _venv_says(layout, "import six; print(six.__version__)") == OLD_SIX
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


# MariaDB's client headers come with devcloud's `up` (as root, by apt): in its lane.
@pytest.mark.devcloud
def test_the_c_mysql_driver_is_built_into_the_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not install.missing_system_packages(install.C_DRIVER_APT), "devcloud up installs them"
    monkeypatch.setattr(install, "data_file", lambda name: b"mysqlclient==2.2.7  # C driver\n")
    layout = _layout(tmp_path)
    assert not install.c_driver_ready(layout)
    assert install.install_c_driver(layout)
    assert install.c_driver_ready(layout)
    assert _venv_says(layout, "import MySQLdb; print(MySQLdb.version_info[:3])") == "(2, 2, 7)"


@pytest.mark.devcloud
def test_a_c_driver_that_will_not_build_leaves_pymysql_and_is_not_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(install, "data_file", lambda name: b"mysqlclient==2.2.7  # C driver\n")
    # A compiler that fails, and no built wheel from an earlier test to fall back on;
    # pip alone (uv's failure handing over to pip has its own test above).
    monkeypatch.setenv("CC", "/bin/false")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("FLOTTE_DEVCLOUD_INSTALLER", "pip")
    layout = _layout(tmp_path)
    assert install.install_c_driver(layout) is False
    assert not install.c_driver_ready(layout)
    log = layout.log("pip")
    assert "Failed to build" in log.read_text() and "mysqlclient" in log.read_text()
    size = log.stat().st_size
    # The next `up` does not build it again (minutes of a loaded machine for nothing).
    assert install.install_c_driver(layout) is False
    assert log.stat().st_size == size
