"""Ironic deploy and vendor interfaces for devcloud's bare metal, installed into the devcloud venv.

devcloud's Ironic nodes (hardware type ``fake-hardware``) have no BMC and no disk:
with Docker-backed compute, "writing the image and booting it" is the compute
agent starting a container, and "erasing the disks" is the agent removing it. So
that Ironic's states follow what really happens, a node marked
``extra/flotte_devcloud_boot = container`` waits:

- its deploy step returns ``wait call-back`` until the agent has started the
  container and calls the ``booted`` vendor passthru (then ``active``);
- its automated clean step returns ``clean wait`` until the agent has removed the
  container and calls ``wiped`` (then ``available``).

Without that mark (fake compute) both steps finish at once, like Ironic's ``fake``
deploy interface. Registered under ``ironic.hardware.interfaces.deploy`` and
``ironic.hardware.interfaces.vendor`` as ``devcloud-container``.
"""

from typing import Any

from ironic.common import states
from ironic.conductor import utils as conductor_utils
from ironic.drivers import base
from ironic.drivers.modules import fake

BOOT_MODE_KEY = "flotte_devcloud_boot"


def _container_backed(node: Any) -> bool:
    return (node.extra or {}).get(BOOT_MODE_KEY) == "container"


class ContainerDeploy(fake.FakeDeploy):  # type: ignore[misc]
    """Deploy and clean steps that wait for devcloud's compute agent."""

    @base.deploy_step(priority=100)  # type: ignore[untyped-decorator]
    def deploy(self, task: Any) -> str | None:
        if _container_backed(task.node):
            return str(states.DEPLOYWAIT)
        # Powered on, as a real deploy leaves it: Nova stops an ACTIVE server whose
        # node it finds powered off.
        conductor_utils.node_power_action(task, states.POWER_ON)
        return None

    def tear_down(self, task: Any) -> str:
        conductor_utils.node_power_action(task, states.POWER_OFF)
        return str(states.DELETED)

    @base.clean_step(priority=10, requires_ramdisk=False)  # type: ignore[untyped-decorator]
    def erase_devices(self, task: Any) -> str | None:
        return str(states.CLEANWAIT) if _container_backed(task.node) else None


class ContainerVendor(base.VendorInterface):  # type: ignore[misc]
    """The compute agent's two calls back, as vendor passthru methods."""

    def get_properties(self) -> dict[str, str]:
        return {}

    def validate(self, task: Any, method: str | None = None, **kwargs: Any) -> None:
        pass

    @base.passthru(["POST"], description="The node's container runs: finish the deploy.")  # type: ignore[untyped-decorator]
    def booted(self, task: Any, http_method: str, **kwargs: Any) -> None:
        if task.node.provision_state == states.DEPLOYWAIT:
            conductor_utils.node_power_action(task, states.POWER_ON)
            conductor_utils.notify_conductor_resume_deploy(task)

    @base.passthru(["POST"], description="The node's container is gone: finish cleaning.")  # type: ignore[untyped-decorator]
    def wiped(self, task: Any, http_method: str, **kwargs: Any) -> None:
        if task.node.provision_state == states.CLEANWAIT:
            conductor_utils.notify_conductor_resume_clean(task)
