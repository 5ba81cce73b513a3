"""An ML2 mechanism driver that binds every port, installed into the devcloud venv.

devcloud runs no Neutron agents (no OVS, no Linux bridge), so no stock mechanism
driver would bind a port and Nova would fail every boot with a binding error.
This driver binds each port to the first segment offered, as vif_type ``ovs``,
and marks it ACTIVE. Registered under ``neutron.ml2.mechanism_drivers`` as
``flotte_devcloud``.
"""

from typing import Any

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class BindAllDriver(api.MechanismDriver):  # type: ignore[misc]
    def initialize(self) -> None:
        pass

    @property
    def connectivity(self) -> str:
        return str(portbindings.CONNECTIVITY_L2)

    def bind_port(self, context: Any) -> None:
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                portbindings.VIF_TYPE_OVS,
                {portbindings.CAP_PORT_FILTER: True, portbindings.OVS_HYBRID_PLUG: False},
                status=constants.PORT_STATUS_ACTIVE,
            )
            return
