"""devcloud's rendered settings that were needed to make the services work (pure)."""

from __future__ import annotations

import configparser
import hashlib
import subprocess
import sys
from pathlib import Path

from flotte.devcloud import install, ironic_conf, render, seed
from flotte.devcloud.layout import Layout

PW = {name: f"pw-{name}" for name in render.SECRET_NAMES}


def _files(tmp_path: Path) -> dict[str, configparser.ConfigParser]:
    venv_etc = tmp_path / "venv-etc"
    for service, name in (
        ("glance", "glance-api-paste.ini"),
        ("nova", "api-paste.ini"),
        ("neutron", "api-paste.ini"),
    ):
        (venv_etc / service).mkdir(parents=True, exist_ok=True)
        (venv_etc / service / name).write_text("[pipeline:x]\npipeline = app\n")
    layout = Layout(tmp_path / "dc")
    files = render.render_all(layout, PW, venv_etc)
    out = {}
    for path, text in files.items():
        if path.suffix in (".conf", ".ini") and path.name != "rabbitmq.conf":
            parser = configparser.ConfigParser(interpolation=None)
            parser.read_string(text)
            out[path.name] = parser
    return out


def test_nova_settings_that_were_needed(tmp_path: Path) -> None:
    nova = _files(tmp_path)["nova.conf"]
    # Neutron deletes compute ports only for a caller with the service role.
    assert nova["service_user"]["send_service_user_token"] == "true"
    # Plain FakeDriver writes no compute_id: nova-compute would not restart.
    assert nova["DEFAULT"]["compute_driver"] == "fake.FakeDriverWithoutFakeNodes"
    filters = nova["filter_scheduler"]["enabled_filters"].split(",")
    assert "ComputeCapabilitiesFilter" not in filters  # baremetal=true extra spec
    assert "AvailabilityZoneFilter" not in filters  # gone in Nova 34
    # Concurrent bare-metal boots spread over Ironic's equal nodes (ci39: two on one).
    assert nova["filter_scheduler"]["shuffle_best_same_weighed_hosts"] == "true"
    assert nova["scheduler"]["discover_hosts_in_cells_interval"] == "2"
    assert "unix_socket=" in nova["database"]["connection"]


def test_neutron_binds_ports_with_devclouds_driver(tmp_path: Path) -> None:
    ml2 = _files(tmp_path)["ml2_conf.ini"]
    assert ml2["ml2"]["mechanism_drivers"] == "flotte_devcloud"
    assert ml2["ml2_type_flat"]["flat_networks"] == "external"


def test_api_environment_and_command_line(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "dc")
    env = render.api_env(layout, "nova")
    assert env["OS_NOVA_CONFIG_FILES"].split(";")[0] == "api-paste.ini"
    args = render.api_args(layout, "keystone")
    assert "--no-control-socket" in args
    assert args[-1] == "flotte_devcloud_wsgi:application"


def test_clouds_entries(tmp_path: Path) -> None:
    entries = seed.clouds(PW)
    assert set(entries) == {"devcloud", "devcloud-demo", "devcloud-alt"}
    assert entries["devcloud"]["auth"]["project_name"] == "admin"
    assert entries["devcloud-demo"]["auth"]["username"] == "devcloud-demo"
    path = tmp_path / "clouds.yaml"
    path.write_text("clouds:\n  other: {auth: {auth_url: http://x}}\n")
    seed.write_clouds_yaml(path, entries)
    assert (path.stat().st_mode & 0o777) == 0o600
    seed.remove_clouds_yaml(path, entries)
    assert "other" in path.read_text() and "devcloud" not in path.read_text()


def _ironic_files(tmp_path: Path) -> dict[str, configparser.ConfigParser]:
    out = {}
    for path, text in ironic_conf.files(Layout(tmp_path / "dc"), PW).items():
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(text)
        out[path.name] = parser
    return out


def test_ironic_settings_that_were_needed(tmp_path: Path) -> None:
    files = _ironic_files(tmp_path)
    ironic = files["ironic.conf"]
    assert ironic["DEFAULT"]["rpc_transport"] == "none"  # API and conductor, one process
    assert ironic["DEFAULT"]["enabled_hardware_types"] == "fake-hardware"
    assert "devcloud-container" in ironic["DEFAULT"]["enabled_deploy_interfaces"].split(",")
    assert "devcloud-container" in ironic["DEFAULT"]["enabled_vendor_interfaces"].split(",")
    # devcloud's admin is project-scoped: the legacy policies let it administer Ironic.
    assert ironic["oslo_policy"]["enforce_scope"] == "false"
    assert ironic["api"]["port"] == "6385" and ironic["api"]["host_ip"] == "127.0.0.1"
    compute = files["nova-compute-ironic.conf"]
    assert compute["DEFAULT"]["compute_driver"] == "ironic.IronicDriver"
    assert compute["DEFAULT"]["host"] == "devcloud-ironic"
    assert int(compute["DEFAULT"]["update_resources_interval"]) <= 10
    assert compute["ironic"]["username"] == "nova"


def test_optional_pins_do_not_change_the_services_fingerprint() -> None:
    """Ironic's pins and the C MySQL driver's are installed apart (``up --ironic``, and
    only where MariaDB's headers are): adding or changing them reinstalls nothing else."""
    lines = install.data_file("constraints.txt").splitlines(keepends=True)
    ironic = [line for line in lines if line.rstrip().endswith(b"# up --ironic")]
    c_driver = [line for line in lines if line.rstrip().endswith(b"# C driver")]
    assert any(line.startswith(b"ironic==") for line in ironic)
    assert [line.split(b"==")[0] for line in c_driver] == [b"mysqlclient"]
    # What decides whether the other services need pip is the file without them.
    base = b"".join(line for line in lines if line not in ironic + c_driver)
    version = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        check=True,
    ).stdout
    assert install._fingerprint(sys.executable) == hashlib.sha256(base + version).hexdigest()


def test_the_database_driver_is_the_c_one_once_it_is_installed(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "dc")
    assert render.db_url(layout, PW, "nova").startswith("mysql+pymysql://")
    # where mysqlclient puts its compiled module in the services' venv
    built = layout.venv / "lib/python3.11/site-packages/MySQLdb/_mysql.cpython-311.so"
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")
    url = render.db_url(layout, PW, "nova")
    assert url.startswith("mysql+mysqldb://devcloud:pw-db@localhost/nova?unix_socket=")
