"""The web page's browser tests: Debian's chromium against a real ``flotte serve``."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest
from web_pages import PASSWORDS

from fixtures.browser import chromium, screenshots
from fixtures.local import sweep
from fixtures.serve import ServeProcess, serve_env
from flotte.models import OWNER_KEY

__all__ = ["chromium", "screenshots"]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """A serve process with three users in three projects (alice and root's admin)."""
    tmp = tmp_path_factory.mktemp("web")
    server = ServeProcess(tmp / "home", serve_env(tmp, DOCKER_CONFIG=str(tmp / "docker"))).start()
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
    web: ServeProcess, docker_engine: docker.DockerClient, node_image: str
) -> Iterator[ServeProcess]:
    """``web`` able to make clusters with the local driver; whatever a failed test left
    of them is swept at the end."""
    try:
        yield web
    finally:
        web.stop()
        owner = web.installation()
        if owner:
            sweep(docker_engine, {OWNER_KEY: owner})
