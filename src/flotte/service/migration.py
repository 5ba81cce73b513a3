"""Moving in and sharing: docker-machine stores, bundles, inventories.

The use cases behind ``flotte machine import|export|ssh-config`` and ``flotte cluster
export-access|inventory``. The reading and the cryptography live in
:mod:`flotte.migrate` and :mod:`flotte.share`; this module records what they give,
under the machine's lock, all or nothing: a machine that fails half-way leaves no
record, no secret file, no copied key and no Docker context behind.

An imported machine is recorded as a lone machine whose record carries
``data["imported"]`` (see :mod:`flotte.service.migration_imported`); its engine keeps
its own certificates (``Endpoint.tls_dir``) and nothing changes on the host.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519

from flotte.client_tls import ClientTLS
from flotte.errors import AlreadyExists, FlotteError, UsageError
from flotte.inventory import InventoryHost
from flotte.migrate import DockerMachine, read_store
from flotte.models import Endpoint, EngineOptions, NodeRecord, check_name
from flotte.service import migration_imported as imported
from flotte.service import options as opts
from flotte.service.installation import Installation
from flotte.service.resolve import build
from flotte.share import Access, Bundle, SharedNode
from flotte.specs import ClusterSpec, machine_spec
from flotte.state.node_rows import set_node
from flotte.state.records import Node
from flotte.state.status import CREATING, READY

IMPORTED, PRESENT, WOULD, SKIPPED = "imported", "already imported", "would import", "skipped"


@dataclass(frozen=True)
class Outcome:
    """One line of an import: a machine and what became of it."""

    name: str
    status: str  # IMPORTED, PRESENT, WOULD or SKIPPED
    detail: str = ""
    source: str = ""  # the docker-machine name, when it differs

    def line(self) -> str:
        src = f" (from {self.source})" if self.source and self.source != self.name else ""
        return f"{self.name}{src}: {self.status}" + (f": {self.detail}" if self.detail else "")


class Migration:
    """Use cases that take machines in from elsewhere and give access out."""

    def __init__(self, inst: Installation) -> None:
        self.inst = inst
        self.store = inst.store

    # -- recording one machine, all or nothing ------------------------------------------
    def _taken(self, name: str) -> str:
        if self.store.find_cluster(name) is not None:
            return f"{name!r} is already the name of a cluster"
        if self.store.find_node(name) is not None:
            return f"a machine named {name!r} already exists in flotte"
        return ""

    @contextmanager
    def _recording(self, name: str) -> Iterator[Path]:
        """The machine's directory; on any failure everything written for it goes."""
        directory = self.inst.paths.machines / name
        with self.inst.lock("machine", name):
            taken = self._taken(name)
            if taken:
                raise AlreadyExists(taken, hint="remove it first, or import under another name")
            try:
                yield directory
            except BaseException:
                imported.forget(self.inst, name)
                shutil.rmtree(directory, ignore_errors=True)
                raise

    def _record(
        self,
        spec: ClusterSpec,
        secrets: dict[str, Any],
        record: NodeRecord,
        endpoint: Endpoint,
    ) -> Node:
        self.inst.options.save("machines", spec.name, secrets)
        self.store.add_machine(spec, CREATING)
        self.store.now(set_node, spec.name, record=record, endpoint=endpoint)
        imported.write_context(self.inst, spec.name, endpoint)
        return self.store.now(set_node, spec.name, status=READY, status_reason="")

    def _spec(
        self, name: str, driver: str, options: dict[str, Any], engine: EngineOptions
    ) -> tuple[ClusterSpec, dict[str, Any]]:
        """A machine spec that records the options as given (nothing is provisioned)."""
        kept = opts.only([driver], options)
        where = opts.placement(driver)
        host = kept.pop(where, None) if where else None
        public, secret = opts.split([driver], kept)
        spec = machine_spec(name, driver, public, engine, host=host)
        return build(ClusterSpec, spec.model_dump(), f"machine {name}"), secret

    # -- docker-machine ----------------------------------------------------------------
    def _same(self, machine: DockerMachine) -> bool:
        """Whether ``machine`` is already recorded (a re-run): same origin, same server."""
        node = self.store.find_node(machine.name)
        note = imported.imported(node) if node is not None else None
        return bool(
            node is not None
            and note is not None
            and note.get("from") == "docker-machine"
            and note.get("name") == machine.source_name
            and node.record is not None
            and node.record.provider_id == machine.mapped.record.provider_id
        )

    def import_docker_machine(
        self, store: Path | None = None, names: Sequence[str] = (), *, dry_run: bool = False
    ) -> list[Outcome]:
        """Record every importable machine of a docker-machine store; one outcome each.

        A store that is missing or is not one raises UsageError (nothing recorded);
        a machine that cannot be taken in is one SKIPPED outcome, the others go on.
        Running it again records nothing twice.
        """
        found = read_store(store, names)
        out = [Outcome(s.name, SKIPPED, s.reason) for s in found.skipped]
        for machine in found.machines:
            src = machine.source_name
            if self._same(machine):
                out.append(Outcome(machine.name, PRESENT, source=src))
                continue
            taken = self._taken(machine.name)
            if taken:
                out.append(Outcome(machine.name, SKIPPED, taken, source=src))
                continue
            if dry_run:
                out.append(Outcome(machine.name, WOULD, self._describe(machine), source=src))
                continue
            try:
                self._import_machine(machine)
            except FlotteError as err:
                out.append(Outcome(machine.name, SKIPPED, str(err), source=src))
                continue
            out.append(Outcome(machine.name, IMPORTED, self._describe(machine), source=src))
        return sorted(out, key=lambda o: o.name)

    @staticmethod
    def _describe(machine: DockerMachine) -> str:
        what = f"{machine.source_driver} -> {machine.driver}, {machine.url}"
        rm = "rm deletes the server" if machine.mapped.rm == "delete" else "rm forgets it"
        return f"{what}; {machine.note or rm}"

    def _import_machine(self, machine: DockerMachine) -> Node:
        spec, secret = self._spec(
            machine.name, machine.driver, machine.mapped.options, machine.engine
        )
        secrets = {**secret, **machine.mapped.secrets}
        opts.split([machine.driver], secrets)  # registers their values with the redactor
        with self._recording(machine.name) as directory:
            record, endpoint = machine.install(directory)
            return self._record(spec, secrets, record, endpoint)

    # -- bundles -----------------------------------------------------------------------
    def _tls(self, endpoint: Endpoint) -> ClientTLS:
        if endpoint.tls_dir:
            return ClientTLS.from_dir(Path(endpoint.tls_dir))
        ca = self.inst.ca
        return ClientTLS.read(ca.ca_path, ca.client.cert, ca.client.key)

    def export_machine(
        self,
        name: str,
        access: Access,
        *,
        passphrase: str | None = None,
        recipient: x25519.X25519PublicKey | None = None,
    ) -> bytes:
        """A sealed bundle of one lone machine (use-only unless ``access`` is owner)."""
        node = self.store.node(name)
        if node.cluster:
            raise UsageError(
                f"{name!r} is a node of cluster {node.cluster!r}",
                hint=f"share the cluster: 'flotte cluster export-access {node.cluster}'",
            )
        if node.record is None or node.endpoint is None:
            raise UsageError(
                f"machine {name!r} has no Docker engine to share (status {node.status})"
            )
        if access is Access.OWNER:
            if node.driver == "local":
                raise UsageError(
                    f"{name} runs on this computer (driver local): share it for use, not ownership"
                )
            if imported.use_only(node):
                raise UsageError(f"{name} is use-only here: it cannot be shared with ownership")
        spec = self.store.machine_spec(name)
        shared = SharedNode(name, node.record, node.endpoint, engine=spec.engine)
        bundle = Bundle.build(
            "machine",
            name,
            access,
            [shared],
            self._tls(node.endpoint),
            options=spec.options,
            secrets=self.inst.options.load("machines", name) if access is Access.OWNER else {},
        )
        return bundle.seal(passphrase=passphrase, recipient=recipient)

    def export_cluster(
        self,
        name: str,
        *,
        passphrase: str | None = None,
        recipient: x25519.X25519PublicKey | None = None,
    ) -> bytes:
        """A sealed use-only bundle of a cluster's engines (managers first)."""
        self.store.cluster(name)
        nodes = [
            SharedNode(
                n.name, n.record, n.endpoint, role=n.role.value, group=n.group, engine=n.engine
            )
            for n in sorted(
                self.store.nodes(cluster=name), key=lambda n: (n.role != "manager", n.name)
            )
            if n.record is not None and n.endpoint is not None
        ]
        if not nodes:
            raise UsageError(f"cluster {name!r} has no node with a Docker engine yet")
        bundle = Bundle.build("cluster", name, Access.USE, nodes, self._tls(nodes[0].endpoint))
        return bundle.seal(passphrase=passphrase, recipient=recipient)

    def open_bundle(
        self,
        data: bytes,
        where: str,
        *,
        passphrase: str | None = None,
        identity: x25519.X25519PrivateKey | None = None,
    ) -> Bundle:
        return Bundle.open(data, where, passphrase=passphrase, identity=identity)

    def import_bundle(self, bundle: Bundle, *, dry_run: bool = False) -> list[Outcome]:
        """Record what a bundle holds: a machine, or a cluster's nodes as use-only machines.

        Every name is checked before anything is written: one taken name refuses all.
        A cluster's context ``flotte-CLUSTER`` points at its first manager.
        """
        for node in bundle.nodes:
            check_name("machine", node.name)
        taken = [t for t in (self._taken(n.name) for n in bundle.nodes) if t]
        if bundle.kind == "cluster" and not taken:
            taken = [t for t in [self._taken(bundle.name)] if t]
        if taken:
            raise AlreadyExists(taken[0], hint="remove it first: a bundle never replaces anything")
        if dry_run:
            return [
                Outcome(n.name, WOULD, f"{bundle.access.value}, {n.endpoint.docker_url}")
                for n in bundle.nodes
            ]
        out: list[Outcome] = []
        done: list[str] = []
        try:
            for node in bundle.nodes:
                self._import_shared(bundle, node)
                done.append(node.name)
                out.append(
                    Outcome(
                        node.name, IMPORTED, f"{bundle.access.value}, {node.endpoint.docker_url}"
                    )
                )
        except BaseException:
            for name in done:  # all or nothing
                with self.inst.lock("machine", name):
                    imported.forget(self.inst, name)
            raise
        if bundle.kind == "cluster":
            first = self.store.node(bundle.nodes[0].name)
            assert first.endpoint is not None
            imported.write_context(self.inst, bundle.name, first.endpoint)
        return out

    def _import_shared(self, bundle: Bundle, node: SharedNode) -> Node:
        one = dataclasses.replace(
            bundle,
            nodes=(node,),
            ssh_keys={k: v for k, v in bundle.ssh_keys.items() if k == node.name},
        )
        with self._recording(node.name) as directory:
            (installed,) = one.install(directory)
            record, endpoint = installed.record, installed.endpoint
            if bundle.kind == "cluster":  # its context goes with the last of its nodes
                record.data["imported"]["cluster"] = bundle.name
            if record.driver == "ssh":  # the ssh driver reads its engine's TLS from its record
                record.data.update(tls_dir=endpoint.tls_dir, docker_port=endpoint.docker_port)
            options = dict(bundle.options) if bundle.access is Access.OWNER else {}
            if record.driver == "ssh":
                options.setdefault("ssh_host", record.data.get("ssh_host") or endpoint.host)
            spec, secret = self._spec(node.name, record.driver, options, node.engine)
            secrets = {**secret, **bundle.secrets} if bundle.access is Access.OWNER else {}
            return self._record(spec, secrets, record, endpoint)

    # -- inventories -------------------------------------------------------------------
    def _reach(self, nodes: Sequence[Node]) -> list[InventoryHost]:
        """How to reach each node over SSH: its recorded endpoint, else what its driver
        says of its record (a node made without an engine still has a shell)."""
        from flotte.service.machines import Machines

        machines = Machines(self.inst)
        out = []
        for n in nodes:
            if n.record is not None and n.record.data.get("no_ssh"):
                continue
            endpoint = n.endpoint
            if endpoint is None and n.record is not None:
                endpoint = machines.driver(n).endpoint(n.record)
            if endpoint is not None:
                out.append(InventoryHost.of(n.name, endpoint, role=n.role.value, group=n.group))
        return out

    def cluster_hosts(self, name: str) -> list[InventoryHost]:
        self.store.cluster(name)
        return self._reach(self.store.nodes(cluster=name))

    def machine_hosts(self, names: Sequence[str] = ()) -> list[InventoryHost]:
        """Lone machines (or ``names``, which may be cluster nodes) that have SSH."""
        nodes = [self.store.node(n) for n in names] if names else self.store.nodes(lone=True)
        return self._reach(nodes)
