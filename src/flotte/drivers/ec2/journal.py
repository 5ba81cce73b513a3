"""Which node each instance of a batch launch is, written before the launch.

One RunInstances launches many nodes with one set of tags, so the instances carry no
node name. AWS numbers the instances of one launch (``AmiLaunchIndex`` 0..N-1) and
keeps the launch's ``ClientToken`` on each of them; the journal writes, before the
call, the node names in launch order under that token. An instance is then node
``names[AmiLaunchIndex]`` of its token's entry, on this run and on a re-run after a
kill, without one CreateTags per node.

Entries live under the driver's home, one directory per group (``group_key``), one
file per launch, written whole (write then rename: a kill leaves the old file or the
new one); ``forget`` removes a group's directory when the group is swept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotte.drivers.ec2 import resources as sh
from flotte.drivers.ec2.connection import group_key
from flotte.models import NODE_KEY, Owner

LAUNCH_TAG = "flotte:launch"  # on every instance: the hash of its launch configuration


@dataclass(frozen=True)
class Entry:
    """One batch launch: its launch configuration's digest and its nodes, in order."""

    token: str
    digest: str
    names: tuple[str, ...]


class Journal:
    def __init__(self, home: Path) -> None:
        self.root = home / "launches"

    def _dir(self, owner: Owner) -> Path:
        return self.root / group_key(owner)

    def write(self, owner: Owner, entry: Entry) -> None:
        """Record a launch before it is made (a kill after the call finds it)."""
        folder = self._dir(owner)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{entry.token}.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"digest": entry.digest, "names": list(entry.names)}))
        os.replace(tmp, path)

    def entries(self, owner: Owner) -> dict[str, Entry]:
        """The group's launches by ClientToken."""
        return self._read(self._dir(owner))

    def _read(self, folder: Path) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        if not folder.is_dir():
            return out
        for path in folder.glob("*.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):  # unreadable: that launch's nodes are unnamed
                continue
            out[path.stem] = Entry(path.stem, str(data["digest"]), tuple(data["names"]))
        return out

    def find(self, name: str) -> tuple[Entry, int] | None:
        """The launch that made node ``name`` and its index there (any group)."""
        if not self.root.is_dir():
            return None
        for folder in self.root.iterdir():
            for entry in self._read(folder).values():
                if name in entry.names:
                    return entry, entry.names.index(name)
        return None

    def forget(self, owner: Owner) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._dir(owner))
        with contextlib.suppress(OSError):
            self.root.rmdir()


def node_of(inst: Mapping[str, Any], entries: Mapping[str, Entry]) -> str | None:
    """The node an instance is: its ``flotte:node`` tag, else its launch's entry."""
    tagged = sh.tags_of(dict(inst)).get(NODE_KEY)
    if tagged:
        return tagged
    entry = entries.get(str(inst.get("ClientToken") or ""))
    index = inst.get("AmiLaunchIndex")
    if entry is None or not isinstance(index, int) or not 0 <= index < len(entry.names):
        return None
    return entry.names[index]
