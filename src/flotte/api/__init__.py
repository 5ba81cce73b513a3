"""The HTTP API of ``flotte serve``: OpenStack Magnum's API v1 (the subset the official
client uses), Keystone v3 password authentication in standalone mode, ``/healthz``.

``app.create_app(settings)`` builds the ASGI app. Handlers are thin: they authorise the
caller, validate, record the desired state and submit a request (``service.requests``)
to the job queue the serve command puts in ``app.state.jobs``.
"""
