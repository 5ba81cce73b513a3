"""Form input, checked by the API's own models, and the API's messages placed by field.

A form's values go through the same pydantic models the API validates JSON with
(``api.magnum.models``), and its errors are the titles the API would answer; each is
shown next to the field it is about, or above the form when it is about none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from flotte.api.errors import status_of, validation_title
from flotte.errors import FlotteError

MAX_FORM = 64 * 1024
M = TypeVar("M", bound=BaseModel)


class FormTooLarge(Exception):
    pass


async def form(request: Request) -> dict[str, str]:
    """The urlencoded body of a form post (the last value of a repeated field)."""
    body = await request.body()
    if len(body) > MAX_FORM:
        raise FormTooLarge()
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def number(value: str | None) -> int | str | None:
    """A count field: blank is None, digits an int, anything else left for the model to
    refuse with its own message."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def text(value: str | None) -> str | None:
    stripped = (value or "").strip()
    return stripped or None


class Invalid(Exception):
    """Input refused: messages by field ("" for the form as a whole), HTTP status."""

    def __init__(self, errors: dict[str, str], status: int = 400) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors
        self.status = status


def checked(model: type[M], data: dict[str, Any]) -> M:
    """``model`` of ``data``, or Invalid with the API's message for each wrong field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        out: dict[str, str] = {}
        for e in err.errors():
            loc = [str(p) for p in e.get("loc", ())]
            field = loc[0] if loc else ""
            title = validation_title(RequestValidationError([{**e, "loc": ("body", *loc)}]))
            out.setdefault(field, title)
        raise Invalid(out) from None


def refused(err: FlotteError, fields: Mapping[str, tuple[str, ...]]) -> Invalid:
    """The API's answer to a request as a form error: placed on the first field whose
    words the message contains (``fields``: field -> words), else above the form."""
    lowered = err.message.lower()
    for field, words in fields.items():
        if any(w in lowered for w in words):
            return Invalid({field: err.message}, status_of(err))
    return Invalid({"": err.message}, status_of(err))
