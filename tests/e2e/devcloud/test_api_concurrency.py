"""A request that waits does not hold up devcloud's Nova or Neutron API.

With gunicorn's sync workers (two per API) each request held a whole process while it
waited: Nova's workers, waiting on their calls to Neutron behind ~300 queued requests
of a 200-server benchmark, were all busy and gunicorn killed them at its timeout. Now
each process serves requests on threads. A client that sends half a request line and
waits is the simplest request that waits: one per process would take every sync worker,
and the API would answer nobody until gunicorn's 300 s timeout.
"""

from __future__ import annotations

import configparser
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.devcloud import DevCloud
from flotte.devcloud import render
from flotte.devcloud.layout import API_PORTS, API_THREADS, API_WORKERS, HOST, Layout


@pytest.fixture
def stalled(request: pytest.FixtureRequest) -> Iterator[str]:
    """The API named by the test's parameter, with one unfinished request per process."""
    service: str = request.param
    held = []
    try:
        for _ in range(API_WORKERS[service]):
            sock = socket.create_connection((HOST, API_PORTS[service]), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: devcloud\r\n")  # no blank line: unfinished
            held.append(sock)
        time.sleep(0.5)  # let each process take one
        yield service
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("stalled", ["nova", "neutron"], indirect=True)
def test_an_api_answers_while_each_of_its_processes_holds_a_waiting_request(
    devcloud: DevCloud, stalled: str
) -> None:
    assert API_THREADS[stalled] > 1
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://{HOST}:{API_PORTS[stalled]}/", timeout=60) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as err:  # the version document may redirect or 300
        status = err.code
    took = time.monotonic() - started
    assert status < 500
    # A sync worker would hold each request until gunicorn's 300 s timeout; 60 s leaves
    # room for a loaded machine.
    assert took < 60, f"{stalled} answered after {took:.1f} s"


def test_the_apis_command_lines_are_part_of_the_settings_up_compares(tmp_path: Path) -> None:
    # `up` restarts running services when the hash of the rendered files changes: a
    # change of workers or threads alone must change it too, or it never takes effect.
    venv_etc = tmp_path / "venv-etc"
    for service, name in (
        ("glance", "glance-api-paste.ini"),
        ("nova", "api-paste.ini"),
        ("neutron", "api-paste.ini"),
    ):
        (venv_etc / service).mkdir(parents=True)
        (venv_etc / service / name).write_text("[pipeline:x]\npipeline = app\n")
    layout = Layout(tmp_path / "dc")
    pw = {name: "pw" for name in render.SECRET_NAMES}
    files = render.render_all(layout, pw, venv_etc)
    commands = json.loads(files[layout.etc / "api-commands.json"])
    for service in API_PORTS:
        assert commands[service] == render.api_args(layout, service)
        args = commands[service]
        assert args[args.index("--worker-class") + 1] == "gthread"
        assert int(args[args.index("--threads") + 1]) == API_THREADS[service]
        assert args[args.index("--keep-alive") + 1] == "0"  # no idle-close race
    nova = configparser.ConfigParser(interpolation=None)
    nova.read_string(files[layout.etc / "nova" / "nova.conf"])
    # Each listing takes two cells' tasks from one pool per process, shared by its threads.
    assert int(nova["DEFAULT"]["cell_worker_thread_pool_size"]) >= 2 * API_THREADS["nova"]
