"""Helpers every Magnum resource uses: internal names, the base URL, paging, JSON patch."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, TypeVar

import jsonpatch
import jsonpointer
from fastapi import Depends, Query, Request
from pydantic import BaseModel

from flotte.api.errors import ApiError
from flotte.api.magnum.models import PatchOp
from flotte.errors import AlreadyExists

T = TypeVar("T")
SLUG_LENGTH = 20  # + "-" + 6 hex: an internal name of at most 27 characters


def internal_name(display: str) -> str:
    """The name in the installation of what a project calls ``display``.

    Clusters (and templates) of different projects may share a display name, but node
    and cloud-resource names derive from the cluster's name, so that one is unique: the
    display name made DNS-safe and cut to 20 characters, then 6 random hex digits
    (``My_Cluster.1`` -> ``my-cluster-1-3f9a1c``).
    """
    slug = re.sub(r"[^a-z0-9]+", "-", display.lower()).strip("-")[:SLUG_LENGTH].strip("-")
    return f"{slug or 'c'}-{secrets.token_hex(3)}"


def with_unique_name(display: str, add: Callable[[str], T], tries: int = 5) -> T:
    """``add(internal name)``, drawing another suffix if that name is taken."""
    for attempt in range(tries):
        try:
            return add(internal_name(display))
        except AlreadyExists:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def base_url(request: Request, public_url: str | None) -> str:
    if public_url:
        return public_url
    return str(request.base_url).rstrip("/")


class Paging(BaseModel):
    """Magnum's list parameters (sorting is accepted and lists stay in creation order)."""

    limit: int | None = None
    marker: str | None = None


async def paging(
    limit: int | None = Query(None, ge=0, le=10_000),
    marker: str | None = Query(None, max_length=64),
    sort_key: str | None = Query(None, max_length=64),
    sort_dir: str | None = Query(None, pattern="^(asc|desc)$"),
) -> Paging:
    return Paging(limit=limit, marker=marker)


Page = Annotated[Paging, Depends(paging)]


def page(
    items: Sequence[T], key: Callable[[T], str], limit: int | None, marker: str | None
) -> tuple[list[T], str | None]:
    """Magnum's paging: items after ``marker`` (a UUID), at most ``limit``; the next marker."""
    start = 0
    if marker:
        keys = [key(i) for i in items]
        if marker not in keys:
            raise ApiError(400, f"marker {marker} is not in this list")
        start = keys.index(marker) + 1
    if limit is None or limit <= 0:
        return list(items[start:]), None
    chunk = list(items[start : start + limit])
    more = start + limit < len(items)
    return chunk, (key(chunk[-1]) if more and chunk else None)


def next_link(request: Request, base: str, marker: str | None, limit: int | None) -> str | None:
    if marker is None:
        return None
    return f"{base}{request.url.path}?limit={limit}&marker={marker}"


def apply_patch(
    current: dict[str, Any], ops: Iterable[PatchOp], writable: Iterable[str]
) -> dict[str, Any]:
    """``current`` after the JSON patch; paths outside ``writable`` are refused (400)."""
    allowed = set(writable)
    doc = {k: v for k, v in current.items() if k in allowed and v is not None}
    patch: list[dict[str, Any]] = []
    for op in ops:
        field = op.path.split("/")[1]
        if field not in allowed:
            if field in current:
                raise ApiError(400, f"'/{field}' is an internal attribute and can not be updated")
            raise ApiError(400, f"'/{field}' is not an attribute that can be updated")
        top = op.path.count("/") == 1
        if top and (op.op == "remove" or op.value is None):
            # Magnum: removing a field, or replacing it with null, sets it back to its default
            if doc.get(field) is not None:
                patch.append({"op": "remove", "path": op.path})
            continue
        patch.append(op.model_dump(exclude_none=op.op == "remove"))
    try:
        result = jsonpatch.apply_patch(doc, patch)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as err:
        raise ApiError(400, f"the JSON patch does not apply: {err}") from None
    if not isinstance(result, dict):
        raise ApiError(400, "the JSON patch must leave an object")
    return result
