"""The web page of flotte serve, at ``/ui`` on the API's own port.

Server-rendered (Jinja2 templates in ``templates/``) with one small script and one
style sheet (``static/``), all served by this process: no build step, no CDN, works
offline. The page signs in with the API's identity (the session cookie holds the
API's token) and acts through the API's own handlers, so what the page allows, refuses
and says is what the API does. Pages:

- ``/ui/login``: standalone users (or a Keystone project in Keystone mode);
- ``/ui/clusters``: the list (status, health, nodes per group, driver, EUR/day, age;
  filters, sort); ``/ui/clusters/new``: create from a template, with the plan and its
  cost before submitting; ``/ui/clusters/{id}``: nodes, node groups, status reason,
  journal, each node's phase live (server-sent events), resize, delete, config;
- ``/ui/templates``, ``/ui/advisor`` ("where to deploy"), ``/ui/quotas``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from flotte.api.errors import status_of
from flotte.api.web import advisor, auth, catalog, clusters, create, groups
from flotte.api.web.forms import FormTooLarge
from flotte.api.web.render import HERE, html
from flotte.api.web.session import PREFIX, CsrfRefused, LoginRequired, login_redirect, viewer
from flotte.errors import FlotteError

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Add the page's routes, static files and error pages to the API's app."""
    for module in (auth, create, clusters, groups, catalog, advisor):
        app.include_router(module.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="ui-static")

    @app.get(PREFIX, include_in_schema=False)
    @app.get(f"{PREFIX}/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse(f"{PREFIX}/clusters", status_code=303)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, err: LoginRequired) -> Response:
        return login_redirect(err)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, err: CsrfRefused) -> Response:
        return HTMLResponse(
            "<!doctype html><title>Refused</title><p>This form is out of date or came from "
            f'another site: <a href="{PREFIX}/clusters">reload the page</a> and try again.',
            status_code=403,
        )

    @app.exception_handler(FormTooLarge)
    async def too_large(request: Request, err: FormTooLarge) -> Response:
        return HTMLResponse("<!doctype html><title>Too large</title><p>Form too large.", 413)

    api_errors = app.exception_handlers.get(FlotteError)

    async def flotte_error(request: Request, err: Exception) -> Response:
        # The API answers Magnum's JSON; a page answers a page saying the same.
        if not request.url.path.startswith(PREFIX + "/") or not isinstance(err, FlotteError):
            assert api_errors is not None
            answer = api_errors(request, err)
            return answer if isinstance(answer, Response) else await answer
        try:
            seen = await viewer(request)
        except LoginRequired as needed:
            return login_redirect(needed)
        status = status_of(err)
        return html(request, "error.html", seen, status=status, message=err.message)

    app.add_exception_handler(FlotteError, flotte_error)
