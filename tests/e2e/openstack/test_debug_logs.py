"""openstacksdk's real debug output, with planted secrets, goes through flotte's redactor.

keystoneauth logs request and response bodies at DEBUG: a new user's password, a key
pair's private key. (botocore's and the CLI's: tests/unit/core/test_logs.py.)
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from flotte import logs


def test_openstacksdk_debug_output_is_redacted(devcloud: Any) -> None:
    import openstack.exceptions

    stream = io.StringIO()
    handler = logs.setup(debug=True, libraries=["openstack", "keystoneauth"])
    handler.setStream(stream)  # type: ignore[attr-defined]
    conn = devcloud.connect()
    password = devcloud.clouds()[devcloud.demo_cloud]["auth"]["password"]
    try:
        with pytest.raises(openstack.exceptions.ForbiddenException):
            conn.identity.create_user(name="planted-user", password="PlantedUserPassw0rd!")
        pair = conn.compute.create_keypair(name="planted-pair")
        conn.compute.delete_keypair(pair)
    finally:
        logging.getLogger().removeHandler(handler)
        for name in ("flotte", "openstack", "keystoneauth"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    out = stream.getvalue()
    assert "REQ: curl" in out and "/v3/users" in out and "RESP BODY" in out
    assert '"password": "***"' in out and '"private_key": "***"' in out
    for planted in ("PlantedUserPassw0rd!", password, pair.private_key[40:90]):
        assert planted not in out
