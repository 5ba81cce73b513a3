"""The compute agent's side of devcloud's bare metal (``up --docker --ironic``).

A server Nova places on an Ironic node is realised as a container like any other,
but on Ironic's schedule, so that the node's states follow the container:

- the node waits in ``wait call-back`` (devcloud's deploy step): the agent creates
  and starts the server's container, then calls the node's ``booted`` vendor
  passthru; Ironic powers the node on and finishes the deploy (``active``), and
  Nova marks the server ACTIVE;
- after a delete the node waits in ``clean wait`` (devcloud's clean step): the
  agent removes the container and its volume ("erases the disk"), then calls
  ``wiped``; the node goes ``available``.

A rebuild is a new deploy: a container made for an earlier deploy of the node
(its ``provision_updated_at`` differs) is replaced. Everything goes through the
public Bare Metal API, as admin.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flotte.devcloud.layout import Layout

log = logging.getLogger("flotte.devcloud.agent")

DEPLOY_WAIT = "wait call-back"
CLEAN_WAIT = "clean wait"
NODE_LABEL = "flotte.devcloud.node"
DEPLOY_LABEL = "flotte.devcloud.deploy"
INTERFACE = "devcloud-container"  # ironic_conf.CONTAINER_INTERFACE
FIELDS = "uuid,name,instance_uuid,provision_state,provision_updated_at,vendor_interface"


@dataclass
class BareMetal:
    conn: Any
    stale: bool = False  # the last listing failed: connect anew next pass

    @classmethod
    def follow(
        cls, layout: Layout, current: BareMetal | None, connect: Callable[[], Any]
    ) -> BareMetal | None:
        """Follow bare metal being turned on or off (``up --ironic``), read each pass.

        A new connection when it comes on, or after a failed listing: a token's
        catalog lists only the services there were when it was issued.
        """
        try:
            on = bool(json.loads(layout.state_file.read_text()).get("ironic"))
        except (OSError, ValueError):
            on = current is not None
        if on and (current is None or current.stale):
            if current is None:
                log.info("bare metal on: following Ironic's nodes")
            else:
                current.conn.close()
            return cls(connect())
        if not on and current is not None:
            log.info("bare metal off")
            current.conn.close()
            return None
        return current

    def nodes(self) -> list[dict[str, Any]]:
        """devcloud's container-backed nodes, one API call (a few fields only).

        An Ironic that does not answer gives none: servers on bare metal then wait
        for the next pass, the others are realised as usual.
        """
        try:
            # Microversion 1.31: the first with the interface fields.
            answer = self.conn.baremetal.get(
                "/nodes", params={"fields": FIELDS, "limit": 1000}, microversion="1.31"
            )
            answer.raise_for_status()
            found = answer.json()["nodes"]
        except Exception as err:
            log.warning("Ironic's nodes not listed: %s", err)
            self.stale = True
            return []
        return [n for n in found if n.get("vendor_interface") == INTERFACE]

    @staticmethod
    def by_instance(nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {n["instance_uuid"]: n for n in nodes if n.get("instance_uuid")}

    @staticmethod
    def waiting_for_boot(node: dict[str, Any]) -> bool:
        return node.get("provision_state") == DEPLOY_WAIT

    @staticmethod
    def labels(node: dict[str, Any]) -> dict[str, str]:
        return {NODE_LABEL: node["uuid"], DEPLOY_LABEL: str(node.get("provision_updated_at"))}

    @classmethod
    def same_deploy(cls, container: Any, node: dict[str, Any]) -> bool:
        return bool(container.labels.get(DEPLOY_LABEL) == cls.labels(node)[DEPLOY_LABEL])

    def booted(self, node: dict[str, Any]) -> None:
        self._call(node, "booted")

    def finish_cleaning(
        self, nodes: list[dict[str, Any]], containers: list[Any], remove: Any
    ) -> None:
        """For each node in ``clean wait``: remove its container (``remove``), then ``wiped``."""
        for node in nodes:
            if node.get("provision_state") != CLEAN_WAIT:
                continue
            for container in containers:
                if container.labels.get(NODE_LABEL) == node["uuid"]:
                    remove(container)
            self._call(node, "wiped")

    def _call(self, node: dict[str, Any], method: str) -> None:
        try:
            self.conn.baremetal.call_node_vendor_passthru(node["uuid"], "POST", method)
            log.info("node %s (%s): %s", node.get("name"), node["uuid"], method)
        except Exception as err:  # e.g. the node is locked by the conductor: next pass
            log.info("node %s: %s not taken yet (%s)", node["uuid"], method, err)
