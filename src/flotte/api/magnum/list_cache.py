"""Rendered list answers kept by one API process, each with the revision it showed.

``GET /v1/clusters`` is what clients poll (``openstack coe cluster list``, dashboards,
``wait`` loops): reading and rendering a project's clusters costs milliseconds, while
checking the project's revision counter (a one-row read that a database trigger keeps,
whichever process or machine wrote) costs a fraction of one. An answer is reused only
while the revision it was rendered at is still the current one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from threading import Lock

SIZE = 256  # answers kept (pages of up to a few hundred clusters each)


class ListCache:
    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self._lock = Lock()  # handlers may run in threads

    def get(self, key: Hashable, revision: int) -> bytes | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0] != revision:
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, key: Hashable, revision: int, body: bytes) -> None:
        with self._lock:
            self._items[key] = (revision, body)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
