"""Cluster spec files: ``flotte apply -f cluster.yaml`` reads one, ``cluster export``
writes one. The file holds a ClusterSpec in Magnum's words; no secrets (they come from
clouds.yaml, OS_*, AWS profiles or 0600 files), no YAML aliases, at most 1 MB.

A problem is one line naming the file, the line and the field, e.g.
``web.yaml:12: nodegroups.1.node_count: Input should be greater than or equal to 0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flotte.errors import ConfigError
from flotte.service import options as opts
from flotte.specs import ClusterSpec, validation_message

MAX_BYTES = 1 << 20
KIND = "Cluster"
API_VERSION = "flotte/v1"
# Derived on every apply: never written, ignored when read.
DERIVED = ("template_fields", "kind")


def _line(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The line of the YAML node at ``loc`` (a pydantic error location), or its parent's."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def read(path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """The mapping in ``path`` and its YAML tree (for line numbers)."""
    where = str(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{where}: larger than {MAX_BYTES // 1024} kB; is it a spec file?")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a directory, not a spec file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{where}: cannot be read as text ({err})") from None
    try:
        # Aliases first: a file of nested aliases expands to gigabytes when loaded.
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                at = event.start_mark.line + 1 if event.start_mark else 0
                raise ConfigError(f"{where}:{at}: YAML aliases are not allowed in spec files")
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}{line}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a spec file is a mapping with name, driver, nodegroups...")
    return data, tree


def load(path: Path) -> tuple[dict[str, Any], ClusterSpec | None, yaml.Node | None]:
    """The file's fields (header removed); the spec when the file is complete alone."""
    data, tree = read(path)
    kind = data.pop("kind", KIND)
    data.pop("apiVersion", None)
    if kind != KIND:
        raise ConfigError(f"{path}: kind {kind!r}: flotte apply reads kind {KIND}")
    for key in DERIVED:
        data.pop(key, None)
    driver = data.get("driver")
    if isinstance(driver, str) and isinstance(data.get("options"), dict):
        _refuse_secrets(path, driver, data["options"], tree, ("options",))
    for i, group in enumerate(data.get("nodegroups") or []):
        if isinstance(group, dict) and isinstance(group.get("options"), dict):
            _refuse_secrets(
                path,
                group.get("driver") or driver or "",
                group["options"],
                tree,
                ("nodegroups", i, "options"),
            )
    if data.get("template"):
        return data, None, tree  # the template fills what the file leaves out
    return data, validate(path, data, tree), tree


def validate(path: Path, data: dict[str, Any], tree: yaml.Node | None) -> ClusterSpec:
    try:
        return ClusterSpec.model_validate(data)
    except ValidationError as err:
        loc = tuple(err.errors()[0].get("loc", ()))
        line = _line(tree, loc)
        raise ConfigError(
            f"{path}{f':{line}' if line else ''}: {validation_message(err)}"
        ) from None


def _refuse_secrets(
    path: Path, driver: str, options: dict[str, Any], tree: yaml.Node | None, loc: tuple[Any, ...]
) -> None:
    """Options must be the driver's own, and none of them a secret (of any driver)."""
    from flotte import drivers
    from flotte.errors import UsageError

    secret = set()
    for name in drivers.names():
        try:
            secret |= {k for k, s in opts.declared(name).items() if s}
        except UsageError:
            continue
    for key in options:
        line = _line(tree, (*loc, key))
        where = f"{path}{f':{line}' if line else ''}"
        if key in secret:
            raise ConfigError(
                f"{where}: {key} is a secret and does not belong in a spec file",
                hint="give it through clouds.yaml, its environment variable or a file",
            )
    if driver not in drivers.names():
        return  # validation names the unknown driver, with its line
    try:
        opts.check_known(driver, options, "")
    except UsageError as err:
        bad = next((k for k in options if k not in opts.declared(driver)), "")
        line = _line(tree, (*loc, bad))
        raise ConfigError(
            f"{path}{f':{line}' if line else ''}: {err.message}", hint=err.hint
        ) from None


def dump(spec: ClusterSpec) -> dict[str, Any]:
    """The file that recreates ``spec`` with ``flotte apply -f``."""
    data = spec.model_dump(mode="json", exclude=set(DERIVED))
    groups = []
    for group in spec.nodegroups:
        g = group.model_dump(mode="json", exclude_defaults=True)
        g["name"], g["role"], g["node_count"] = group.name, group.role, group.node_count
        groups.append(g)
    data["nodegroups"] = groups
    engine = {k: v for k, v in data.pop("engine").items() if v not in (None, [], ())}
    out: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND}
    out.update({k: v for k, v in data.items() if v not in (None, {}, [])})
    if engine:
        out["engine"] = engine
    out["no_provision"] = spec.no_provision
    return out
