"""Load the shipped provider files and the user's overrides into one validated catalog.

YAML is composed into nodes first, not straight into Python objects, because the
nodes keep line numbers: a user override is merged node by node onto the shipped
entry, and a validation error is traced back through the merged nodes to the file
and line the offending value came from.

Override rules (a user file under ``<config>/catalog/*.yaml``):
- an entry whose ``name`` is new adds a provider and must be complete;
- an entry whose ``name`` exists is merged onto it: mappings merge key by key,
  ``regions``, ``flavors`` and ``certifications`` merge item by item on ``name``,
  and any other value (``prices`` included) replaces the shipped one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from flotte.errors import ConfigError, NotFound

from .models import Provider

DATA_DIR = Path(__file__).resolve().parent / "data"
# User files are untrusted input: bounded in size, nesting and what aliases expand to
# (a 700-byte file of aliases nested 8 deep stands for 43 million values). The shipped
# files use a fraction of each (5.5 kB, 6 levels, 265 characters).
MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 24
MAX_VALUE_CHARS = 10_000
MAX_VALUES = 100_000  # values once aliases are expanded
_NAMED_LISTS = frozenset({"regions", "flavors", "certifications"})
# libyaml's composer is several times faster than the pure-Python one and keeps marks.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Catalog:
    """All providers, shipped and user-defined, validated; ``origins`` lists the files
    each provider was built from (shipped first, then overrides)."""

    providers: dict[str, Provider]
    origins: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, name: str) -> Provider:
        """The provider called ``name``; NotFound names close matches."""
        found = self.providers.get(name) or self.providers.get(name.lower())
        if found is not None:
            return found
        import difflib

        close = difflib.get_close_matches(name.lower(), list(self.providers), n=3, cutoff=0.75)
        hint = f"did you mean {', '.join(close)}?" if close else "see `flotte providers list`"
        raise NotFound(f"no provider '{name}' in the catalog", hint=hint)

    def __iter__(self) -> Iterator[Provider]:
        return iter(self.providers.values())

    def __len__(self) -> int:
        return len(self.providers)


def default_user_dir() -> Path:
    """Where user catalog files live: ``<config dir>/catalog``."""
    from flotte.config import paths

    return paths().config / "catalog"


def load_catalog(user_dir: Path | None = None, *, shipped: bool = True) -> Catalog:
    """Load and validate the shipped catalog plus every ``*.yaml`` in ``user_dir``
    (default ``<config>/catalog``). A bad file raises ConfigError naming file, line
    and field; nothing is written anywhere. Results are cached per process and
    invalidated when a user file changes."""
    udir = default_user_dir() if user_dir is None else user_dir
    user_files = _yaml_files(udir)
    key = (
        str(udir),
        shipped,
        tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in user_files),
    )
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    nodes: dict[str, Node] = {}
    origins: dict[str, list[str]] = {}
    if shipped:
        for path in _yaml_files(DATA_DIR):
            for name, node in _provider_nodes(path):
                if name in nodes:
                    raise ConfigError(f"{path}: provider '{name}' is defined twice")
                nodes[name] = node
                origins[name] = [str(path)]
    for path in user_files:
        for name, node in _provider_nodes(path):
            nodes[name] = _merge(nodes[name], node, None) if name in nodes else node
            origins.setdefault(name, []).append(str(path))
    providers = {name: _validate(node) for name, node in sorted(nodes.items())}
    catalog = Catalog(providers, {k: tuple(v) for k, v in origins.items()})
    _CACHE.clear()  # one live entry is enough; tests switch FLOTTE_HOME often
    _CACHE[key] = catalog
    return catalog


def validate_file(path: Path) -> list[str]:
    """Validate one user file on its own, each entry merged onto the shipped provider
    of the same name; returns the provider names it defines, raises ConfigError."""
    names = []
    for name, node in _provider_nodes(path):
        shipped = _shipped_node(name)
        _validate(node if shipped is None else _merge(shipped, node, None))
        names.append(name)
    return names


def user_files(directory: Path) -> list[Path]:
    """The catalog files of a user directory, in load order."""
    return _yaml_files(directory)


_CACHE: dict[tuple[Any, ...], Catalog] = {}


def _yaml_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _shipped_node(name: str) -> Node | None:
    for path in _yaml_files(DATA_DIR):
        for found, node in _provider_nodes(path):
            if found == name:
                return node
    return None


def _compose(path: Path) -> Node | None:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                f"{path}: {size} bytes: a catalog file may hold at most {MAX_FILE_BYTES} bytes"
            )
        with path.open(encoding="utf-8") as stream:
            loader = _Loader(stream)
            try:
                node: Node | None = loader.get_single_node()
            finally:
                loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {err.problem or err.context}") from err
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from err
    return node


def _provider_nodes(path: Path) -> list[tuple[str, Node]]:
    """The provider mappings of one file: either the file is one provider, or it has
    a single ``providers:`` key holding a list of them."""
    root = _compose(path)
    if root is None:
        return []
    _check_shape(root)
    if not isinstance(root, MappingNode):
        raise ConfigError(f"{_where(root)}: expected a provider mapping or 'providers:' list")
    entries: list[Node] = [root]
    if len(root.value) == 1 and _key(root.value[0][0]) == "providers":
        seq = root.value[0][1]
        if not isinstance(seq, SequenceNode):
            raise ConfigError(f"{_where(seq)}: providers: expected a list of providers")
        entries = list(seq.value)
    out: list[tuple[str, Node]] = []
    for entry in entries:
        if not isinstance(entry, MappingNode):
            raise ConfigError(f"{_where(entry)}: expected a provider mapping")
        name_node = _child(entry, "name")
        if not isinstance(name_node, ScalarNode) or not name_node.value:
            raise ConfigError(f"{_where(entry)}: name: a provider needs a name")
        out.append((str(name_node.value), entry))
    return out


def _check_shape(root: Node) -> None:
    """Refuse, with file, line and field, what would hang, crash or mislead the loader.

    Walks the node graph once, aliases expanded, and stops at the first of: a value
    nested too deep, an alias that contains itself, more values than ``MAX_VALUES``,
    a value longer than ``MAX_VALUE_CHARS``, a date that is no date, a key given twice.
    """
    seen = [0]
    on_path: set[int] = set()

    def walk(node: Node, field: tuple[Any, ...]) -> None:
        where = f"{_where(node)}: {_dotted(field) or '(top)'}"
        seen[0] += 1
        if seen[0] > MAX_VALUES:
            raise ConfigError(
                f"{where}: aliases expand to more than {MAX_VALUES} values", hint="write it out"
            )
        if len(field) > MAX_DEPTH:
            raise ConfigError(f"{where}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, ScalarNode):
            _check_scalar(node, where)
            return
        if id(node) in on_path:
            raise ConfigError(f"{where}: an alias refers to the value that contains it")
        on_path.add(id(node))
        if isinstance(node, MappingNode):
            keys: set[str] = set()
            for k, v in node.value:
                name = _key(k)
                # PyYAML keeps the last of two equal keys without a word; in a price file
                # that silently drops a figure, so it is an error here.
                if name in keys:
                    raise ConfigError(f"{_where(k)}: {name}: key appears twice in this mapping")
                keys.add(name)
                walk(k, field)
                walk(v, (*field, name))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*field, i))
        on_path.discard(id(node))

    walk(root, ())


def _check_scalar(node: ScalarNode, where: str) -> None:
    if len(node.value) > MAX_VALUE_CHARS:
        raise ConfigError(
            f"{where}: a value of {len(node.value)} characters (at most {MAX_VALUE_CHARS})"
        )
    if node.tag == "tag:yaml.org,2002:timestamp":
        try:
            SafeConstructor().construct_yaml_timestamp(node)
        except (ValueError, OverflowError) as err:
            raise ConfigError(f"{where}: {node.value!r} is not a valid date ({err})") from err


def _merge(base: Node, over: Node, key: str | None) -> Node:
    if isinstance(base, MappingNode) and isinstance(over, MappingNode):
        items = list(base.value)
        index = {_key(k): i for i, (k, _) in enumerate(items)}
        for k, v in over.value:
            i = index.get(_key(k))
            if i is None:
                items.append((k, v))
            else:
                items[i] = (k, _merge(items[i][1], v, _key(k)))
        return MappingNode(base.tag, items, over.start_mark, over.end_mark)
    if key in _NAMED_LISTS and isinstance(base, SequenceNode) and isinstance(over, SequenceNode):
        merged = list(base.value)
        by_name = {_name_of(n): i for i, n in enumerate(merged)}
        for item in over.value:
            i = by_name.get(_name_of(item))
            if i is None or _name_of(item) is None:
                merged.append(item)
            else:
                merged[i] = _merge(merged[i], item, None)
        return SequenceNode(base.tag, merged, over.start_mark, over.end_mark)
    return over


def _validate(node: Node) -> Provider:
    from pydantic import ValidationError

    try:
        data = SafeConstructor().construct_document(node)
    except yaml.MarkedYAMLError as err:  # e.g. a !!python/object tag: refused, with its line
        mark = err.problem_mark or err.context_mark or node.start_mark
        raise ConfigError(f"{mark.name}:{mark.line + 1}: invalid YAML: {err.problem}") from err
    except (ValueError, TypeError, OverflowError) as err:  # a value PyYAML cannot build
        raise ConfigError(f"{_where(node)}: invalid value: {err}") from err
    context = _context(data)
    try:
        return Provider.model_validate(data, context=context)
    except ValidationError as err:
        errors = err.errors()
        first = errors[0]
        loc = tuple(first["loc"])
        target = _follow(node, loc)
        field_path = _dotted(loc) or "(provider)"
        msg = str(first["msg"]).removeprefix("Value error, ")
        got = first.get("input")
        if first["type"] not in ("missing", "value_error") and isinstance(
            got, str | int | float | bool
        ):
            msg += f" (got {got!r})"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        name = data.get("name", "?") if isinstance(data, dict) else "?"
        raise ConfigError(f"{_where(target)}: provider {name}: {field_path}: {msg}{more}") from err


def _context(data: Any) -> dict[str, Any]:
    # Handed to field validators so a dangling reference is reported at its own line.
    if not isinstance(data, dict):
        return {}
    sources = data.get("sources")
    regions = data.get("regions")
    ctx: dict[str, Any] = {}
    if isinstance(sources, dict):
        ctx["sources"] = {str(k) for k in sources}
    if isinstance(regions, list):
        ctx["regions"] = {str(r.get("name")) for r in regions if isinstance(r, dict)}
    return ctx


def _follow(node: Node, loc: tuple[Any, ...]) -> Node:
    """The deepest node along a pydantic error location (the parent when a key is missing)."""
    current = node
    for part in loc:
        nxt: Node | None = None
        if isinstance(current, MappingNode):
            nxt = _child(current, str(part))
        elif isinstance(current, SequenceNode) and isinstance(part, int):
            nxt = current.value[part] if 0 <= part < len(current.value) else None
        if nxt is None:
            break
        current = nxt
    return current


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "tagged-union", "literal")):
            continue  # pydantic's internal validator names say nothing to a user
        else:
            out += f".{part}" if out else str(part)
    return out


def _child(mapping: MappingNode, key: str) -> Node | None:
    for k, v in mapping.value:
        if _key(k) == key:
            return v  # type: ignore[no-any-return]
    return None


def _key(node: Node) -> str:
    return str(node.value) if isinstance(node, ScalarNode) else repr(node.value)


def _name_of(node: Node) -> str | None:
    if isinstance(node, MappingNode):
        child = _child(node, "name")
        if isinstance(child, ScalarNode):
            return str(child.value)
    return None


def _where(node: Node) -> str:
    mark = node.start_mark
    return f"{mark.name}:{mark.line + 1}"
