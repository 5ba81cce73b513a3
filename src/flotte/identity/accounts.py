"""Per-project driver accounts: the credentials and defaults a project's clusters use.

An account is every option of one driver for one project (an OpenStack cloud's auth URL,
user, password, project, region...; EC2 keys), sealed as one blob bound to the project
and the driver, so it never opens for another project. Nothing reads it back but the
worker that runs that project's clusters: the API never returns it, only its option
names.

When a cluster is made, the options a template field also sets (flavor, image,
networks) are the project's *defaults*: the template's values win over them. Every
other option (the credentials, the endpoint, the SSH user) is *forced*: the account's
value wins over anything a template says, so no template can point a project's
password at another cloud.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from flotte import drivers
from flotte.errors import ConfigError, NotFound, UsageError
from flotte.identity.vault import Vault
from flotte.state.tenancy import AccountRecord, TenancyStore

COMMON = frozenset({"engine_install_url"})  # options every driver takes


def _bound(project: str, driver: str) -> str:
    return f"account:{project}:{driver}"


def declared(driver: str) -> dict[str, bool]:
    """Option keys of ``driver`` with whether each is secret (unknown driver: UsageError)."""
    return {o.key: o.secret for o in drivers.options(driver)}


def field_targets(driver: str) -> frozenset[str]:
    """Options of ``driver`` that a Magnum template field fills (flavor, image...)."""
    return frozenset(o.key for o in drivers.options(driver) if o.template_field)


def split_defaults(
    driver: str, options: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(defaults a template may override, forced options) of an account."""
    targets = field_targets(driver)
    defaults = {k: v for k, v in options.items() if k in targets}
    forced = {k: v for k, v in options.items() if k not in targets}
    return defaults, forced


class Accounts:
    def __init__(self, tenancy: TenancyStore, vault: Vault) -> None:
        self.tenancy = tenancy
        self.vault = vault

    def add(self, project: str, driver: str, options: Mapping[str, Any]) -> AccountRecord:
        """Record (or replace) ``project``'s account for ``driver``."""
        known = set(declared(driver)) | COMMON
        given = {k: v for k, v in options.items() if v not in (None, "", (), [])}
        unknown = sorted(set(given) - known)
        if unknown:
            raise UsageError(f"the {driver} driver has no option {unknown[0]!r}")
        if not given:
            raise UsageError(f"an account for the {driver} driver needs at least one option")
        sealed = self.vault.seal(
            json.dumps(given, sort_keys=True).encode(), _bound(project, driver)
        )
        self.tenancy.put_account(project, driver, sealed, given)
        found = self.tenancy.account([project], driver)
        assert found is not None
        return found

    def options(self, projects: Iterable[str], driver: str) -> dict[str, Any] | None:
        """The opened options of the first of ``projects`` with an account, or None."""
        record = self.tenancy.account(projects, driver)
        if record is None:
            return None
        data = json.loads(self.vault.open(record.sealed, _bound(record.project, driver)))
        if not isinstance(data, dict):
            raise ConfigError(f"the account of {record.project} for {driver} is not an object")
        return data

    def all(self, project: str | None = None) -> list[AccountRecord]:
        return self.tenancy.accounts(project)

    def remove(self, project: str, driver: str) -> None:
        if not self.tenancy.delete_account(project, driver):
            raise NotFound(f"project {project!r} has no {driver} account")


# clouds.yaml auth keys -> the OpenStack driver's options
_CLOUD_AUTH = {
    "auth_url": "openstack_auth_url",
    "username": "openstack_username",
    "password": "openstack_password",
    "project_name": "openstack_project_name",
    "project_id": "openstack_project_id",
    "user_domain_name": "openstack_user_domain_name",
    "project_domain_name": "openstack_project_domain_name",
    "domain_name": "openstack_domain_name",
    "domain_id": "openstack_domain_id",
    "application_credential_id": "openstack_application_credential_id",
    "application_credential_name": "openstack_application_credential_name",
    "application_credential_secret": "openstack_application_credential_secret",
}


def clouds_yaml_files(given: Path | None) -> list[Path]:
    if given is not None:
        return [given]
    env = os.environ.get("OS_CLIENT_CONFIG_FILE")
    names = [Path(env)] if env else []
    names += [
        Path.cwd() / "clouds.yaml",
        Path.home() / ".config" / "openstack" / "clouds.yaml",
        Path("/etc/openstack/clouds.yaml"),
    ]
    return names


def openstack_cloud_options(cloud: str, clouds_yaml: Path | None = None) -> dict[str, Any]:
    """The OpenStack driver's options for a ``clouds.yaml`` entry, read once, here.

    An account then holds everything itself: the serve host needs no clouds.yaml.
    """
    for path in clouds_yaml_files(clouds_yaml):
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read {path}: {err}") from err
        entry = (data.get("clouds") or {}).get(cloud)
        if entry is None:
            continue
        out: dict[str, Any] = {}
        for key, value in (entry.get("auth") or {}).items():
            if key in _CLOUD_AUTH and value not in (None, ""):
                out[_CLOUD_AUTH[key]] = value
        if entry.get("region_name"):
            out["openstack_region"] = entry["region_name"]
        if entry.get("interface"):
            out["openstack_endpoint_type"] = entry["interface"]
        if entry.get("verify") is False or entry.get("insecure"):
            out["openstack_insecure"] = True
        if entry.get("cacert"):
            out["openstack_cacert"] = entry["cacert"]
        return out
    where = ", ".join(str(p) for p in clouds_yaml_files(clouds_yaml))
    raise NotFound(f"cloud {cloud!r} is in no clouds.yaml ({where})")
