"""devcloud: real OpenStack services (Keystone, Glance, Placement, Nova, Neutron) on 127.0.0.1.

Installed from PyPI into their own virtualenv with pinned versions, backed by MariaDB
and RabbitMQ from Debian run by hand, seeded with flavors, an image, networks and
quotas, and registered in clouds.yaml. ``DevCloud`` (in ``flotte.devcloud.cloud``)
is the entry point: ``up()``, ``down()``, ``status()``.
"""
