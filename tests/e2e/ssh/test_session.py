"""SSH sessions on a real sshd: file transfer is exact, secrets never reach a log or ps."""

from __future__ import annotations

import base64
import logging
import os

import pytest

from flotte.provision.sessions import session

pytestmark = pytest.mark.docker


async def test_files_round_trip_exactly(ssh_host, target) -> None:
    host = ssh_host("docker")
    payloads = {
        "/tmp/flotte-t/empty": b"",
        "/tmp/flotte-t/binary": bytes(range(256)) * 40,
        "/tmp/flotte-t/no-newline": b"last line without newline",
        "/tmp/flotte-t/big": os.urandom(300_000),
        "/tmp/flotte-t/dir with space/x": b"FLOTTE_EOF\n'quotes' \"and\" $vars\n",
    }
    async with session(target(host, user="deploy")) as sess:
        await sess.put_many([(p, d, 0o640) for p, d in payloads.items()])
        back = await sess.read_many([*payloads, "/tmp/flotte-t/missing"])
    assert back.pop("/tmp/flotte-t/missing") is None
    assert back == payloads
    assert host.sh("stat -c '%a %U' /tmp/flotte-t/binary").split() == ["640", "root"]
    assert host.sh("ls -a /tmp/flotte-t | grep -c flotte-tmp || true").strip() == "0"


async def test_secrets_stay_out_of_logs_and_command_lines(
    ssh_host, target, caplog: pytest.LogCaptureFixture
) -> None:
    host = ssh_host("docker")
    secret = b"-----BEGIN EC PRIVATE KEY-----\nSECRET-MARKER-5f2c\n-----END EC PRIVATE KEY-----\n"
    caplog.set_level(logging.DEBUG)
    async with session(target(host)) as sess:
        await sess.put_many([("/etc/flotte-test/key.pem", secret, 0o600)])
        listing = (await sess.run("ps -eo args")).stdout
    assert host.sh("cat /etc/flotte-test/key.pem").encode() == secret
    assert "SECRET-MARKER" not in caplog.text
    assert "SECRET-MARKER" not in listing
    assert base64.b64encode(secret)[:40].decode() not in caplog.text  # nor its base64 form
