"""Nova's and Neutron's JSON, sent and read without openstacksdk's resource objects.

A node is three POSTs (port, floating IP, server) and three DELETEs. Through the SDK's
``create_*`` each built a request and a response ``Resource`` (about 2.6 ms of CPU
per create, py-spy profile of a 100-node create: a quarter of flotte's CPU per node)
for a caller that reads two or three fields. The requests still go through the SDK's
service proxies: keystoneauth's token, endpoint, connection pool and microversion
header are the same; errors are the SDK's exception types (``raise_from_response``),
so retries and messages do not change.
"""

from __future__ import annotations

import weakref
from typing import Any

_JSON = {"Accept": "application/json"}

# Per compute proxy, asked once: its microversion does not change while the process
# lives, and asking keystoneauth walks the catalog and the discovery cache, copying
# their data, on every POST and DELETE of a server and every poll.
_microversions: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


class Doc:
    """One resource as the API's JSON; a field reads as an attribute (absent: None).

    The fields flotte reads (``id``, ``name``, ``fixed_ips``, ``floating_ip_address``,
    ``port_id``, ``status``) have the same names on the wire as on the SDK's objects,
    so a Doc and a listed SDK object are read alike.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._raw.get(name)

    def __repr__(self) -> str:
        return f"Doc(id={self._raw.get('id')!r}, name={self._raw.get('name')!r})"


def send(proxy: Any, method: str, path: str, *, gone_ok: bool = False, **kwargs: Any) -> Any:
    """One request through an SDK service proxy, answered as JSON (blocking): its
    ``requests`` response, an error raised as the SDK's exception; with ``gone_ok``,
    None for a 404 (already deleted, or no longer there)."""
    from openstack import exceptions as os_exc

    response = getattr(proxy, method.lower())(path, headers=_JSON, **kwargs)
    if gone_ok and response.status_code == 404:
        return None
    os_exc.raise_from_response(response)
    return response


def post(
    proxy: Any,
    path: str,
    key: str,
    body: dict[str, Any],
    *,
    microversion: Any = None,
    extra: dict[str, Any] | None = None,
) -> Doc:
    """``POST path {key: body, **extra}``; the created resource (blocking)."""
    response = send(
        proxy, "POST", path, json={key: body, **(extra or {})}, microversion=microversion
    )
    created = response.json().get(key) or {}
    created.pop("adminPass", None)  # a new server's root password: flotte never uses it
    return Doc(created)


def post_many(proxy: Any, path: str, key: str, bodies: list[dict[str, Any]]) -> list[Doc]:
    """``POST path {key: bodies}`` (Neutron's bulk create); the created resources
    (blocking)."""
    response = send(proxy, "POST", path, json={key: bodies})
    return [Doc(created) for created in response.json().get(key) or []]


def delete(proxy: Any, path: str, *, microversion: Any = None) -> None:
    """``DELETE path``; already gone (404) is done (blocking)."""
    send(proxy, "DELETE", path, gone_ok=True, microversion=microversion)


def compute_microversion(compute: Any) -> Any:
    """The microversion the SDK's own server calls use, so bodies and fields match."""
    try:
        return _microversions[compute]
    except KeyError:
        from openstack.compute.v2.server import Server

        version = _microversions[compute] = Server._get_microversion(compute)
        return version
