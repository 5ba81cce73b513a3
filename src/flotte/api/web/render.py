"""HTML out of the package's Jinja2 templates, with the headers every page carries.

The Content-Security-Policy allows only this server's own script and style (no inline
script, no other origin), so the page works offline and an injected string cannot run.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from flotte.api.web.listing import age, eur
from flotte.api.web.session import Viewer

HERE = Path(__file__).resolve().parent
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
DAYS_PER_MONTH = 730.0 / 24
GZIP_ABOVE = 2048  # bytes  # the advisor's month: 730 hours


def pagelink(params: Any, page: int) -> str:
    """The list's query string with another page number."""
    kept = [(k, v) for k, v in params.multi_items() if k != "page"]
    return urlencode([*kept, ("page", str(page))])


env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html", "svg"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["eur"] = eur
env.filters["age"] = age
env.filters["pagelink"] = pagelink
env.globals["DAYS_PER_MONTH"] = DAYS_PER_MONTH


def html(
    request: Request,
    template: str,
    viewer: Viewer | None,
    status: int = 200,
    **data: Any,
) -> HTMLResponse:
    body = env.get_template(template).render(request=request, viewer=viewer, **data).encode()
    headers = dict(HEADERS)
    # A list of 1,000 clusters is ~230 kB of HTML and ~20 kB gzipped; the API's JSON
    # stays as the API sends it, so this page compresses its own answers.
    if len(body) > GZIP_ABOVE and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    headers["Vary"] = "Accept-Encoding"
    return HTMLResponse(body, status_code=status, headers=headers)
