"""A machine or a cluster, packed to be used from another computer.

A :class:`Bundle` holds the nodes' records and endpoints and the client TLS material
that reaches their engines, never a CA's private key. Two kinds of access:

* ``use``: the engines only. Records keep where the nodes are and nothing of the
  exporter's cloud accounts; no SSH key, no secret. On the receiving side the machine
  is use-only: flotte there never stops or deletes it.
* ``owner``: everything ``flotte machine rm`` needs to delete exactly those servers:
  the full records (server and instance IDs, how to reach the cloud), the SSH keys
  and the driver secrets the exporter kept for them.

``seal``/``open`` wrap :mod:`flotte.share.sealed`; ``install`` writes the TLS
material and keys into a directory and returns the nodes pointing at the copies.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from flotte.client_tls import ClientTLS
from flotte.config import write_secret
from flotte.errors import ConfigError, UsageError
from flotte.models import Endpoint, EngineOptions, NodeRecord
from flotte.share import sealed

KINDS = ("machine", "cluster")
# What a use-only record keeps: where the node is, nothing of how it was made.
USE_FIELDS = ("ssh_host", "ssh_user", "ssh_port", "hostname", "private_address", "os", "arch")
TLS_DIR = "tls"
KEYS_DIR = "keys"


class Access(StrEnum):
    USE = "use"
    OWNER = "owner"


@dataclass(frozen=True)
class SharedNode:
    """One node of a bundle: its record, how to reach it, its role in a cluster."""

    name: str
    record: NodeRecord
    endpoint: Endpoint
    role: str = "machine"
    group: str = "default"
    engine: EngineOptions = field(default_factory=EngineOptions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "group": self.group,
            "record": dataclasses.asdict(self.record),
            "endpoint": dataclasses.asdict(self.endpoint),
            "engine": self.engine.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SharedNode:
        try:
            return cls(
                name=str(data["name"]),
                role=str(data.get("role") or "machine"),
                group=str(data.get("group") or "default"),
                record=NodeRecord(**data["record"]),
                endpoint=Endpoint(**data["endpoint"]),
                engine=EngineOptions.from_dict(data.get("engine")),
            )
        except (KeyError, TypeError) as err:
            raise ConfigError(f"the bundle's node {data.get('name')!r} is not valid") from err

    def for_use(self) -> SharedNode:
        """The node as a use-only bundle carries it."""
        data = {k: v for k, v in self.record.data.items() if k in USE_FIELDS}
        data.update(read_only=True)
        record = NodeRecord(
            name=self.record.name,
            driver="ssh",
            provider_id=self.record.provider_id if self.record.driver == "ssh" else "",
            addresses=list(self.record.addresses),
            data=data,
        )
        endpoint = dataclasses.replace(self.endpoint, ssh_key=None, tls_dir=None)
        return dataclasses.replace(self, record=record, endpoint=endpoint)


def _not_a_ca_key(tls: ClientTLS) -> None:
    """Refuse material whose key is a CA's: a bundle lets one use engines, not sign."""
    key = serialization.load_pem_private_key(tls.key_pem, None, unsafe_skip_rsa_key_validation=True)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for ca in x509.load_pem_x509_certificates(tls.ca_pem):
        ca_public = ca.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if ca_public == public:
            raise UsageError("refusing to put a CA's private key in a bundle")


@dataclass(frozen=True)
class Bundle:
    """What a bundle file holds once opened."""

    kind: str
    name: str
    access: Access
    nodes: tuple[SharedNode, ...]
    tls: ClientTLS
    ssh_keys: Mapping[str, bytes] = field(default_factory=dict)  # node name -> private key
    options: Mapping[str, Any] = field(default_factory=dict)  # the spec's public options
    secrets: Mapping[str, str] = field(default_factory=dict)  # driver secrets (owner)
    spec: Mapping[str, Any] = field(default_factory=dict)  # a cluster's spec (owner)

    @classmethod
    def build(
        cls,
        kind: str,
        name: str,
        access: Access,
        nodes: Sequence[SharedNode],
        tls: ClientTLS,
        *,
        options: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        spec: Mapping[str, Any] | None = None,
    ) -> Bundle:
        """Pack nodes for ``access``: a use-only bundle drops keys, secrets and cloud details."""
        if kind not in KINDS:
            raise ValueError(f"bundle kind {kind!r}")
        if not nodes:
            raise UsageError(f"{kind} {name!r} has no node to share")
        _not_a_ca_key(tls)
        tls.check()
        if access is Access.USE:
            return cls(kind, name, access, tuple(n.for_use() for n in nodes), tls)
        keys = {}
        for node in nodes:
            if node.endpoint.ssh_key:
                try:
                    keys[node.name] = Path(node.endpoint.ssh_key).read_bytes()
                except OSError as err:
                    raise UsageError(
                        f"cannot read the SSH key of {node.name} ({node.endpoint.ssh_key}): "
                        f"{err.strerror}"
                    ) from err
        return cls(
            kind,
            name,
            access,
            tuple(nodes),
            tls,
            ssh_keys=keys,
            options=dict(options or {}),
            secrets=dict(secrets or {}),
            spec=dict(spec or {}),
        )

    # -- serialisation ------------------------------------------------------------

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "kind": self.kind,
                "name": self.name,
                "access": self.access.value,
                "nodes": [n.to_dict() for n in self.nodes],
                "tls": {
                    "ca.pem": self.tls.ca_pem.decode(),
                    "cert.pem": self.tls.cert_pem.decode(),
                    "key.pem": self.tls.key_pem.decode(),
                },
                "ssh_keys": {k: base64.b64encode(v).decode() for k, v in self.ssh_keys.items()},
                "options": dict(self.options),
                "secrets": dict(self.secrets),
                "spec": dict(self.spec),
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Bundle:
        try:
            raw = json.loads(data)
            kind, name, access = raw["kind"], str(raw["name"]), Access(raw["access"])
            tls = ClientTLS(
                ca_pem=raw["tls"]["ca.pem"].encode(),
                cert_pem=raw["tls"]["cert.pem"].encode(),
                key_pem=raw["tls"]["key.pem"].encode(),
            )
            keys = {str(k): base64.b64decode(v) for k, v in (raw.get("ssh_keys") or {}).items()}
            nodes = tuple(SharedNode.from_dict(n) for n in raw["nodes"])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError("the bundle's content is not valid") from err
        if kind not in KINDS or not nodes:
            raise ConfigError("the bundle's content is not valid")
        if access is Access.USE:
            nodes = tuple(n.for_use() for n in nodes)  # whoever wrote it, use is use
            keys = {}
        return cls(
            kind,
            name,
            access,
            nodes,
            tls,
            ssh_keys=keys,
            options=raw.get("options") or {},
            secrets=(raw.get("secrets") or {}) if access is Access.OWNER else {},
            spec=raw.get("spec") or {},
        )

    def label(self) -> dict[str, Any]:
        """What the file says about itself without a key."""
        return {"kind": self.kind, "name": self.name, "access": self.access.value}

    def seal(
        self, *, passphrase: str | None = None, recipient: x25519.X25519PublicKey | None = None
    ) -> bytes:
        return sealed.seal(self.to_json(), self.label(), passphrase=passphrase, recipient=recipient)

    @classmethod
    def open(
        cls,
        data: bytes,
        where: str,
        *,
        passphrase: str | None = None,
        identity: x25519.X25519PrivateKey | None = None,
    ) -> Bundle:
        """Decrypt and validate; every failure is one UsageError line, nothing written."""
        found = sealed.parse(data, where)
        plain = sealed.open_sealed(found, where, passphrase=passphrase, identity=identity)
        try:
            bundle = cls.from_json(plain)
        except ConfigError as err:
            raise UsageError(f"{where}: {err}") from err
        if bundle.label() != dict(found.label):
            raise UsageError(f"{where} is damaged: its label does not match its content")
        try:
            bundle.tls.check()
        except ConfigError as err:
            raise UsageError(f"{where}: the client certificate cannot be used: {err}") from err
        return bundle

    # -- installing -----------------------------------------------------------------

    def install(self, directory: Path) -> list[SharedNode]:
        """Write the TLS material (``tls/``) and SSH keys (``keys/NODE``) into ``directory``.

        Returns the nodes with their endpoints and records naming the copies (a record
        field that named the exporter's key file now names the copy).
        """
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        tls_dir = str(self.tls.write(directory / TLS_DIR))
        out = []
        for node in self.nodes:
            key_path: str | None = None
            data = dict(node.record.data)
            if node.name in self.ssh_keys:
                key_path = str(directory / KEYS_DIR / node.name)
                write_secret(Path(key_path), self.ssh_keys[node.name])
                old = node.endpoint.ssh_key
                data = {k: (key_path if old and v == old else v) for k, v in data.items()}
            data["imported"] = {
                "from": "bundle",
                "access": self.access.value,
                "rm": "delete" if self.access is Access.OWNER else "forget",
                "read_only": self.access is Access.USE,
            }
            out.append(
                dataclasses.replace(
                    node,
                    record=dataclasses.replace(node.record, data=data),
                    endpoint=dataclasses.replace(node.endpoint, ssh_key=key_path, tls_dir=tls_dir),
                )
            )
        return out
