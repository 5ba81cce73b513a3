"""The web page's browser tests: Debian's chromium against a real ``flotte serve``."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest
from web_pages import PASSWORDS, installation

from fixtures.browser import WebServe, chromium, screenshots, serve_environment
from fixtures.local import sweep
from flotte.models import OWNER_KEY

__all__ = ["chromium", "screenshots"]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServe]:
    """A serve process with three users in three projects (alice and root's admin)."""
    tmp = tmp_path_factory.mktemp("web")
    server = WebServe(tmp / "home", serve_environment(tmp)).start()
    for user, project, admin in (
        ("alice", "lab", False),
        ("bob", "other", False),
        ("root", "ops", True),
    ):
        server.user(user, project, PASSWORDS[user], admin=admin)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def local_web(
    web: WebServe, docker_engine: docker.DockerClient, node_image: str
) -> Iterator[WebServe]:
    """``web`` able to make clusters with the local driver; whatever a failed test left
    of them is swept at the end."""
    try:
        yield web
    finally:
        web.stop()
        owner = installation(web.home)
        if owner:
            sweep(docker_engine, {OWNER_KEY: owner})
