"""Docker contexts written from the installation's CA or from an engine's own TLS directory."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from flotte import contexts
from flotte.client_tls import ClientTLS
from flotte.pki import CertificateAuthority


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return tmp_path / "docker" / "contexts"


def written(root: Path, name: str) -> tuple[dict, ClientTLS, Path]:
    ident = contexts._id(contexts.context_name(name))
    tls_dir = root / "tls" / ident / "docker"
    meta = json.loads((root / "meta" / ident / "meta.json").read_text())
    return meta, ClientTLS.from_dir(tls_dir), tls_dir / "key.pem"


def test_today_callers_get_the_installation_ca(docker_config: Path, tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs").ensure()
    assert contexts.write("web", "tcp://10.0.0.1:2376", ca, "flotte machine web") == "flotte-web"
    meta, tls, key = written(docker_config, "web")
    assert meta["Endpoints"]["docker"] == {"Host": "tcp://10.0.0.1:2376", "SkipTLSVerify": False}
    assert meta["Metadata"]["Description"] == "flotte machine web"
    assert tls == ClientTLS.read(ca.ca_path, ca.client.cert, ca.client.key)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert contexts.exists("web")
    contexts.remove("web")
    assert not contexts.exists("web")


def test_an_engines_own_tls_dir_wins(docker_config: Path, tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs").ensure()
    own = CertificateAuthority(tmp_path / "other" / "certs").ensure()  # another CA's client
    contexts.write("imported", "tcp://10.0.0.2:2376", ca, tls_dir=own.directory)
    _, tls, _ = written(docker_config, "imported")
    assert tls.ca_pem == own.ca_path.read_bytes() != ca.ca_path.read_bytes()
    contexts.write("alone", "tcp://10.0.0.3:2376", tls_dir=str(own.directory))
    with pytest.raises(ValueError):
        contexts.write("neither", "tcp://10.0.0.4:2376")
