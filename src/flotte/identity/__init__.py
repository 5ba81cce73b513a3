"""Who is asking, and what their project may use: for ``flotte serve``.

- ``principal``: the caller (user, project, roles) and the two errors of identity;
- ``standalone``: projects and users kept by flotte serve, password hashes, tokens;
- ``keystone``: tokens validated against a real Keystone (Keystone mode);
- ``accounts``: per-project driver credentials, sealed at rest;
- ``cluster_ca``: each cluster's own CA (sealed key), client CSRs signed with it;
- ``quotas``: Magnum's per-project cluster quota, admitted atomically;
- ``vault``: the serve key that seals all of the above and signs tokens.

Layering: the API and ``service.requests`` use this package; it uses ``state``, ``pki``
and the driver registry, never the service or the API.
"""
