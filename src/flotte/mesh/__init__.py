"""A WireGuard mesh between the nodes of a cluster whose node groups sit on different
sites (issue 15): nodes of different providers share no private network, so each node
gets a mesh address and Swarm advertises and carries its data path on it.

- ``keys``: one X25519 key pair per node, the private key in a 0600 file under the
  installation's secrets (never in the database), rotated with ``regenerate-certs``.
- ``topology``: pure: which nodes need the mesh, their mesh addresses, each node's
  WireGuard configuration and its peers, the firewall rules that open only the
  WireGuard UDP port between members' public addresses.
- ``scripts``: the shell a node runs: the kernel module where present, Debian's
  ``wireguard-go`` otherwise, ``wireguard-tools`` for ``wg``.

``flotte.service.mesh`` wires it into the lifecycle (a "mesh" step before the swarm's
init and joins, peer removal when a node goes, key rotation with regenerate-certs).
"""
