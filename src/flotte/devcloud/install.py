"""Install what devcloud runs: MariaDB and RabbitMQ from Debian, OpenStack from PyPI.

The OpenStack services go into their own virtualenv (``<devcloud>/venv``), pinned by
``files/constraints.txt``; flotte's own environment never sees them. A hash of the
constraints file and interpreter is kept in the venv, so a second ``up`` skips pip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from flotte.devcloud.layout import Layout
from flotte.errors import FlotteError

# Debian packages and the executable each one brings.
APT_PACKAGES = {
    "mariadb-server": "/usr/sbin/mariadbd",
    "rabbitmq-server": "/usr/lib/rabbitmq/bin/rabbitmq-server",
}
# MariaDB's client headers, to build the C MySQL driver (mysqlclient). Optional: without
# them the services talk to MariaDB through PyMySQL, in pure Python, which costs the
# services a third of their CPU on a loaded machine (Neutron's profile, CI).
C_DRIVER_APT = {"libmariadb-dev": "/usr/bin/mariadb_config"}

# Top-level requirements; their versions and every dependency's come from constraints.
SERVICES = (
    "keystone",
    "glance",
    "openstack-placement",
    "nova",
    "neutron",
    "gunicorn",
    "PyMySQL",
)

# Installed only by `up --ironic` (same venv, same constraints file, where its pins
# end with IRONIC_MARK so that they change nothing for a devcloud without it).
IRONIC_SERVICES = ("ironic",)
IRONIC_MARK = b"# up --ironic"
# The C MySQL driver's pin ends with this mark: installing it is optional, so it is
# left out of the hash that tells whether the services need installing.
C_DRIVER_MARK = b"# C driver"

# Modules copied into the venv; the ML2 driver and the Ironic interfaces are found
# through these entry points.
EXT_MODULES = ("flotte_devcloud_wsgi.py", "flotte_devcloud_ml2.py", "flotte_devcloud_ironic.py")
EXT_DIST = "flotte_devcloud_ext-1.0.dist-info"
EXT_ENTRY_POINTS = (
    "[neutron.ml2.mechanism_drivers]\nflotte_devcloud = flotte_devcloud_ml2:BindAllDriver\n"
    "\n[ironic.hardware.interfaces.deploy]\n"
    "devcloud-container = flotte_devcloud_ironic:ContainerDeploy\n"
    "\n[ironic.hardware.interfaces.vendor]\n"
    "devcloud-container = flotte_devcloud_ironic:ContainerVendor\n"
)


def data_file(name: str) -> bytes:
    return resources.files("flotte.devcloud").joinpath("files", name).read_bytes()


def missing_system_packages(packages: dict[str, str] = APT_PACKAGES) -> list[str]:
    return [pkg for pkg, exe in packages.items() if not Path(exe).exists()]


def _apt_get(args: list[str], log: Path) -> int:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with open(log, "ab") as out:
        return subprocess.run(
            ["apt-get", *args], stdout=out, stderr=subprocess.STDOUT, env=env, check=False
        ).returncode


def install_system_packages(layout: Layout) -> list[str]:
    """apt-get install MariaDB and RabbitMQ when absent, and MariaDB's client headers
    when apt-get can (as root); returns what was installed."""
    missing = missing_system_packages()
    can_apt = shutil.which("apt-get") is not None and os.geteuid() == 0
    optional = missing_system_packages(C_DRIVER_APT) if can_apt else []
    if not missing and not optional:
        return []
    if shutil.which("apt-get") is None:
        raise FlotteError(
            f"devcloud needs {', '.join(missing)} and this machine has no apt-get",
            hint="install MariaDB and RabbitMQ with the system's package manager",
        )
    if os.geteuid() != 0:
        raise FlotteError(
            f"devcloud needs {', '.join(missing)}",
            hint=f"run: sudo apt-get install -y {' '.join(missing)}",
        )
    log = layout.log("apt")
    apt_install = ["install", "-y", "--no-install-recommends"]
    if _apt_get([*apt_install, *missing, *optional], log) != 0:
        # A fresh machine may have no package lists yet.
        _apt_get(["update"], log)
        # Then without the optional headers, which only make the services faster.
        done = (
            _apt_get([*apt_install, *missing, *optional], log) == 0
            or not missing
            or _apt_get([*apt_install, *missing], log) == 0
        )
        if not done:
            raise FlotteError(f"apt-get install {' '.join(missing)} failed: see {log}")
    still = missing_system_packages()
    if still:
        raise FlotteError(f"{', '.join(still)} did not install: see {log}")
    headers_missing = missing_system_packages(C_DRIVER_APT)
    return [*missing, *(pkg for pkg in optional if pkg not in headers_missing)]


def _python() -> str:
    # A venv's python builds new venvs from its base interpreter, which is what we want.
    return os.environ.get("FLOTTE_DEVCLOUD_PYTHON") or sys.executable


def _python_version(python: str) -> str:
    return subprocess.run(
        [python, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _fingerprint(python: str) -> str:
    # Ironic's lines are left out: adding or changing them must not make every
    # devcloud reinstall, migrate and restart its other services.
    pins = data_file("constraints.txt").splitlines(keepends=True)
    base = b"".join(
        line for line in pins if not line.rstrip().endswith((IRONIC_MARK, C_DRIVER_MARK))
    )
    return hashlib.sha256(base + _python_version(python).encode()).hexdigest()


def pins_fingerprint(layout: Layout) -> str:
    """The whole constraints file, optional pins included (Ironic's, the C driver's), and
    the venv's interpreter: what Ironic's install and a failed C driver build key on."""
    version = _python_version(str(layout.bin("python")))
    return hashlib.sha256(data_file("constraints.txt") + version.encode()).hexdigest()


def venv_ready(layout: Layout) -> bool:
    marker = layout.venv / ".flotte-constraints"
    py = layout.bin("python")
    return marker.exists() and py.exists() and marker.read_text() == _fingerprint(str(py))


def _uv() -> str | None:
    """uv's executable, when flotte's environment has it (the ``devcloud`` extra) or it
    is on PATH: it installs the services in a fraction of pip's time (downloads and
    builds side by side), which is most of a first ``up``. FLOTTE_DEVCLOUD_INSTALLER=pip
    keeps pip."""
    if os.environ.get("FLOTTE_DEVCLOUD_INSTALLER", "").lower() == "pip":
        return None
    if found := shutil.which("uv", path=str(Path(sys.prefix) / "bin")):
        return found
    return shutil.which("uv")


def pip_install(layout: Layout, packages: tuple[str, ...], what: str) -> None:
    """Install ``packages`` into the services' venv, pinned by the constraints file."""
    constraints = layout.etc / "constraints.txt"
    constraints.parent.mkdir(parents=True, exist_ok=True)
    constraints.write_bytes(data_file("constraints.txt"))
    python = str(layout.bin("python"))
    pins = ["-c", str(constraints), *packages]
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", *pins]
    log = layout.log("pip")
    with open(log, "ab") as out:
        if uv := _uv():
            cmd = [uv, "pip", "install", "--python", python, "--compile-bytecode", *pins]
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode == 0:
                return
            # uv reads neither pip.conf nor PIP_* (a lab's mirror, find-links, CA):
            # pip, which does, gets the last word.
            out.write(b"\nuv failed: installing with pip instead\n")
            out.flush()
        res = subprocess.run(pip, stdout=out, stderr=subprocess.STDOUT, check=False)
    if res.returncode != 0:
        raise FlotteError(f"pip install of {what} failed: see {log}")


def c_driver_ready(layout: Layout) -> bool:
    """Whether the services' venv has the C MySQL driver (mysqlclient's ``MySQLdb``)."""
    return any(layout.venv.glob("lib/python*/site-packages/MySQLdb/_mysql*.so"))


def install_c_driver(layout: Layout) -> bool:
    """Build and install mysqlclient into the services' venv when MariaDB's headers are
    here; False if it is not there (PyMySQL serves then). A build that failed is not
    tried again until the constraints or the interpreter change: its log is pip's."""
    if c_driver_ready(layout):
        return True
    if missing_system_packages(C_DRIVER_APT):
        return False
    failed = layout.venv / ".flotte-c-driver-failed"
    fingerprint = pins_fingerprint(layout)
    if failed.exists() and failed.read_text() == fingerprint:
        return False
    try:
        pip_install(layout, ("mysqlclient",), "the C MySQL driver")
    except FlotteError:
        failed.write_text(fingerprint)
        return False
    return c_driver_ready(layout)


def install_services(layout: Layout) -> bool:
    """Create the venv and pip-install the pinned services; False if already done."""
    if venv_ready(layout):
        install_extension(layout)
        install_c_driver(layout)
        return False
    if not layout.bin("python").exists():
        res = subprocess.run(
            [_python(), "-m", "venv", str(layout.venv)], capture_output=True, text=True
        )
        if res.returncode != 0:
            raise FlotteError(f"could not create {layout.venv}: {res.stderr.strip()[-200:]}")
    pip_install(layout, SERVICES, "the OpenStack services")
    install_extension(layout)
    install_c_driver(layout)
    (layout.venv / ".flotte-constraints").write_text(_fingerprint(str(layout.bin("python"))))
    return True


def ironic_ready(layout: Layout) -> bool:
    marker = layout.venv / ".flotte-ironic"
    return venv_ready(layout) and marker.exists() and marker.read_text() == pins_fingerprint(layout)


def install_ironic(layout: Layout) -> bool:
    """pip-install Ironic into the services' venv (after ``install_services``); False if done.

    Apart from the other services so that a devcloud without bare metal neither
    downloads nor carries it; pinned by the same constraints file.
    """
    if ironic_ready(layout):
        return False
    pip_install(layout, IRONIC_SERVICES, "Ironic")
    (layout.venv / ".flotte-ironic").write_text(pins_fingerprint(layout))
    return True


def site_packages(layout: Layout) -> Path:
    out = subprocess.run(
        [
            str(layout.bin("python")),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Path(out)


def install_extension(layout: Layout) -> None:
    """Copy the WSGI loader and ML2 driver into the venv, with a dist-info for the entry point.

    Written on every ``up`` (it is two small files), so a flotte upgrade reaches them.
    """
    site = site_packages(layout)
    for name in EXT_MODULES:
        (site / name).write_bytes(data_file(name))
    dist = site / EXT_DIST
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: flotte-devcloud-ext\nVersion: 1.0\n"
        "Summary: devcloud's WSGI loader and ML2 bind-all mechanism driver\n"
    )
    (dist / "entry_points.txt").write_text(EXT_ENTRY_POINTS)
    (dist / "INSTALLER").write_text("flotte\n")
    (dist / "RECORD").write_text(
        "".join(f"{n},,\n" for n in EXT_MODULES)
        + "".join(f"{EXT_DIST}/{f},,\n" for f in ("METADATA", "entry_points.txt", "INSTALLER"))
        + f"{EXT_DIST}/RECORD,,\n"
    )


def ensure_debootstrap(layout: Layout) -> None:
    """The guest image starts from a debootstrapped Debian (no Docker Hub here)."""
    if shutil.which("debootstrap") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return  # present, or not ours to install: the image build says what is missing
    log = layout.log("apt")
    if _apt_get(["install", "-y", "--no-install-recommends", "debootstrap"], log) != 0:
        _apt_get(["update"], log)
        _apt_get(["install", "-y", "--no-install-recommends", "debootstrap"], log)
