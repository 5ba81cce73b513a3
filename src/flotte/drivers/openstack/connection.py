"""Reaching an OpenStack cloud: credentials, one shared Connection, calls with retries.

Credentials come the OpenStack way, in this order of precedence: explicit
``--openstack-*`` flags (which the CLI also fills from docker-machine's ``OS_*``
variables), then the ``clouds.yaml`` entry named by ``--openstack-cloud`` found on
openstacksdk's search path. Environment variables are *not* read here a second time:
the CLI already turned them into options, so a test or a library caller gets exactly
what it passed.

One :class:`Provider` exists per set of credentials in a process. It holds the
openstacksdk ``Connection`` (thread-safe enough for concurrent requests once its
service proxies exist), a semaphore per event loop bounding how many blocking calls
run at once in worker threads, and a counter of HTTP requests (the benchmark's "API
calls"). Secrets never appear in ``repr``, logs or error messages.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import json
import os
import random
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flotte.drivers.base import ClientPool
from flotte.drivers.batch import SingleFlight
from flotte.drivers.threads import in_thread, own_pool
from flotte.errors import (
    AuthError,
    DriverError,
    FlotteError,
    NotFound,
    QuotaExceeded,
    Unreachable,
    UsageError,
)

T = TypeVar("T")

_POLL_LANE = 2  # calls at once for the server watcher, beside the account's limit

# Statuses that mean "the request was not carried out, try again later": rate limits
# (OVHcloud allows 20 requests/s per project), a busy resource, an overloaded service.
RETRY_WRITE = frozenset({409, 429, 503})
# Reads are idempotent, so gateway errors and 500s are worth another try too.
RETRY_READ = RETRY_WRITE | {500, 502, 504}

_AUTH_KEYS = {
    # option key -> keystoneauth auth argument
    "openstack_auth_url": "auth_url",
    "openstack_username": "username",
    "openstack_user_id": "user_id",
    "openstack_password": "password",
    "openstack_tenant_name": "project_name",
    "openstack_project_name": "project_name",
    "openstack_tenant_id": "project_id",
    "openstack_project_id": "project_id",
    "openstack_user_domain_name": "user_domain_name",
    "openstack_user_domain_id": "user_domain_id",
    "openstack_project_domain_name": "project_domain_name",
    "openstack_project_domain_id": "project_domain_id",
    "openstack_application_credential_id": "application_credential_id",
    "openstack_application_credential_name": "application_credential_name",
    "openstack_application_credential_secret": "application_credential_secret",
}
_APP_CRED = ("application_credential_id", "application_credential_name")
_INTERFACES = {"publicurl": "public", "internalurl": "internal", "adminurl": "admin"}


def _opt(options: Mapping[str, Any], key: str) -> Any:
    value = options.get(key)
    return None if value in (None, "", (), []) else value


@dataclass(frozen=True)
class CloudSpec:
    """Everything needed to build a Connection; ``auth`` may hold secrets (never shown)."""

    cloud: str | None
    auth: Mapping[str, str] = field(default_factory=dict, repr=False)
    region: str | None = None
    interface: str | None = None
    verify: bool | str | None = None
    auth_type: str | None = None

    @property
    def key(self) -> str:
        """A stable digest identifying these credentials (for caching, never displayed)."""
        blob = json.dumps(
            [self.cloud, dict(self.auth), self.region, self.interface, self.verify],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """A name for messages: the cloud name or the auth URL, nothing secret."""
        return self.cloud or self.auth.get("auth_url", "OpenStack")


def cloud_spec(options: Mapping[str, Any]) -> CloudSpec:
    """Turn ``--openstack-*`` options into a :class:`CloudSpec`; raise UsageError early."""
    auth: dict[str, str] = {}
    for key, target in _AUTH_KEYS.items():
        value = _opt(options, key)
        if value is not None:
            auth.setdefault(target, str(value))
    # docker-machine's --openstack-domain-name/-id apply to both the user and the project.
    for suffix in ("name", "id"):
        domain = _opt(options, f"openstack_domain_{suffix}")
        if domain is not None:
            auth.setdefault(f"user_domain_{suffix}", str(domain))
            auth.setdefault(f"project_domain_{suffix}", str(domain))
    cloud = _opt(options, "openstack_cloud")
    if cloud is None and "auth_url" not in auth:
        raise UsageError(
            "no OpenStack credentials: give --openstack-cloud NAME (clouds.yaml) or "
            "--openstack-auth-url with a user or an application credential "
            "(or OS_CLOUD / OS_AUTH_URL)"
        )
    auth_type = None
    if any(k in auth for k in _APP_CRED):
        if "application_credential_secret" not in auth:
            raise UsageError(
                "an application credential needs its secret: give "
                "--openstack-application-credential-secret (or OS_APPLICATION_CREDENTIAL_SECRET)"
            )
        auth_type = "v3applicationcredential"
        # A project scope cannot be given with an application credential: it has one.
        for k in ("project_name", "project_id", "project_domain_name", "project_domain_id"):
            auth.pop(k, None)
        if "application_credential_id" in auth:
            for k in ("username", "user_id", "user_domain_name", "user_domain_id"):
                auth.pop(k, None)
    elif "application_credential_secret" in auth:
        raise UsageError(
            "--openstack-application-credential-secret given without "
            "--openstack-application-credential-id or -name"
        )
    verify: bool | str | None = None
    if options.get("openstack_insecure"):
        verify = False
    elif _opt(options, "openstack_cacert") is not None:
        verify = str(options["openstack_cacert"])
    interface = _opt(options, "openstack_endpoint_type")
    if interface is not None:
        interface = _INTERFACES.get(str(interface).lower(), str(interface).lower())
    return CloudSpec(
        cloud=None if cloud is None else str(cloud),
        auth=auth,
        region=_opt(options, "openstack_region"),
        interface=interface,
        verify=verify,
        auth_type=auth_type,
    )


def close_matches(word: str, candidates: Iterable[str], n: int = 5) -> str:
    """`` (did you mean: a, b?)`` or an empty string; lists a few choices when none is close."""
    pool = sorted({c for c in candidates if c})
    near = difflib.get_close_matches(word, pool, n=n, cutoff=0.5)
    if near:
        return f" (did you mean: {', '.join(near)}?)"
    if pool:
        more = ", ..." if len(pool) > n else ""
        return f" (available: {', '.join(pool[:n])}{more})"
    return " (none available)"


def connect(spec: CloudSpec, pool_size: int = 32) -> Any:
    """Build an openstacksdk Connection (blocking: call it in a worker thread)."""
    import openstack.config
    import openstack.connection
    from keystoneauth1 import exceptions as ksa_exc
    from keystoneauth1.session import TCPKeepAliveAdapter
    from openstack import exceptions as os_exc
    from openstack.config import loader

    # load_envvars=False: OS_* variables already became options (see module docstring).
    # That also hides the clouds.yaml location variables, so honour those here.
    config_files = list(loader.CONFIG_FILES)
    secure_files = list(loader.SECURE_FILES)
    if os.environ.get("OS_CLIENT_CONFIG_FILE"):
        config_files.insert(0, os.environ["OS_CLIENT_CONFIG_FILE"])
    if os.environ.get("OS_CLIENT_SECURE_FILE"):
        secure_files.insert(0, os.environ["OS_CLIENT_SECURE_FILE"])
    config = openstack.config.OpenStackConfig(
        load_envvars=False, config_files=config_files, secure_files=secure_files
    )
    # openstacksdk 4.22 keeps an all-None InfluxDB settings dict, which is truthy, so
    # every CloudRegion warns that InfluxDB support is deprecated (an error under
    # pytest's -W error). Without an InfluxDB host there is nothing to configure.
    influx = getattr(config, "_influxdb_config", None)
    if isinstance(influx, dict) and not influx.get("host"):
        config._influxdb_config = {}
    kwargs: dict[str, Any] = {}
    if spec.auth:
        kwargs["auth"] = dict(spec.auth)
    if spec.auth_type:
        kwargs["auth_type"] = spec.auth_type
    if spec.region:
        kwargs["region_name"] = spec.region
    if spec.interface:
        kwargs["interface"] = spec.interface
    if spec.verify is not None:
        if spec.verify is False:
            kwargs["verify"] = False
        else:
            kwargs["cacert"] = spec.verify
    try:
        region = config.get_one(cloud=spec.cloud, **kwargs)
    except os_exc.ConfigException as err:
        if spec.cloud and "not found" in str(err).lower():
            names = config.get_cloud_names()
            raise UsageError(
                f"unknown cloud {spec.cloud!r} in clouds.yaml{close_matches(spec.cloud, names)}"
            ) from err
        raise UsageError(f"OpenStack configuration: {err}") from err
    except ksa_exc.MissingRequiredOptions as err:
        missing = ", ".join(
            "--openstack-" + o.dest.replace("_", "-") for o in getattr(err, "options", [])
        )
        raise UsageError(f"OpenStack credentials incomplete: missing {missing or err}") from err
    except ksa_exc.NoMatchingPlugin as err:
        raise UsageError(f"OpenStack credentials: {err}") from err
    conn = openstack.connection.Connection(config=region)
    # The default pool (10) is smaller than the number of worker threads that share it.
    for scheme in ("https://", "http://"):
        conn.session.mount(scheme, TCPKeepAliveAdapter(pool_maxsize=pool_size))
    return conn


def translate(err: BaseException, what: str, spec: CloudSpec | None = None) -> FlotteError:
    """One clear FlotteError for an openstacksdk/keystoneauth exception."""
    from keystoneauth1 import exceptions as ksa_exc
    from openstack import exceptions as os_exc

    where = f" at {spec.label}" if spec else ""
    if isinstance(err, FlotteError):
        return err
    if isinstance(err, ksa_exc.Unauthorized) or (
        isinstance(err, os_exc.HttpException) and err.status_code == 401
    ):
        return AuthError(
            f"OpenStack refused the credentials{where}",
            hint="check the user/password or application credential and the project",
        )
    if isinstance(err, ksa_exc.ConnectFailure | ksa_exc.ConnectTimeout | ksa_exc.SSLError):
        return Unreachable(f"cannot reach OpenStack{where}: {type(err).__name__}")
    if isinstance(err, ksa_exc.EndpointNotFound | os_exc.EndpointNotFound):
        return DriverError(f"{what}: no such service endpoint{where} ({err})")
    if isinstance(err, ksa_exc.MissingRequiredOptions):
        return UsageError(f"OpenStack credentials incomplete: {err}")
    if isinstance(err, os_exc.HttpException):
        detail = _detail(err)
        if _is_quota(err):
            return QuotaExceeded(f"{what}: {detail}")
        if err.status_code == 403:
            return AuthError(f"{what}: forbidden{where}: {detail}")
        if err.status_code == 404:
            return NotFound(f"{what}: not found: {detail}")
        return DriverError(f"{what}: HTTP {err.status_code}: {detail}")
    if isinstance(err, os_exc.SDKException | ksa_exc.ClientException):
        return DriverError(f"{what}: {err}")
    return DriverError(f"{what}: {type(err).__name__}: {err}")


def _detail(err: Any) -> str:
    text = str(getattr(err, "details", None) or getattr(err, "message", "") or err)
    return " ".join(text.split())[:300]


def _is_quota(err: Any) -> bool:
    text = f"{getattr(err, 'details', '')} {getattr(err, 'message', '')}".lower()
    return "quota" in text and getattr(err, "status_code", None) in (403, 409, 413)


def status_of(err: BaseException) -> int | None:
    """The HTTP status of an SDK error, or None for anything else."""
    code = getattr(err, "status_code", None) or getattr(err, "http_status", None)
    return int(code) if isinstance(code, int) else None


def _retry_after(err: BaseException) -> float | None:
    response = getattr(err, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return min(float(value), 30.0) if value is not None else None
    except ValueError:
        return None


def backoff(err: BaseException, attempt: int) -> float:
    """Seconds before trying again: the cloud's Retry-After, else 0.4 s doubling up to
    8 s; jittered, so calls refused together do not come back together."""
    return (_retry_after(err) or min(0.4 * 2**attempt, 8.0)) * random.uniform(0.8, 1.25)


def is_transient(err: BaseException, statuses: frozenset[int]) -> bool:
    """True for errors a retry may cure: listed statuses (not quota) and dropped links."""
    from keystoneauth1 import exceptions as ksa_exc

    if isinstance(err, ksa_exc.ConnectFailure | ksa_exc.ConnectTimeout):
        return True
    status = status_of(err)
    return status in statuses and not _is_quota(err)


class _LoopState:
    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        # The server watcher's own lane: queued behind 400 nodes' writes, its first poll
        # waited 12 minutes and every ACTIVE wait ran out unlooked-at (2026-12-04).
        self.polls = asyncio.Semaphore(_POLL_LANE)
        # Nova's server requests (boot, delete, power) have a budget of their own, as
        # clouds limit each service apart (OVHcloud: 20 requests/s per project to Nova,
        # as many to Neutron). Sharing one, boots (answered once Nova asked Neutron and
        # Glance) held the slots the floating IPs needed, and the other way round.
        self.servers = asyncio.Semaphore(limit)
        # A thread per call allowed at once (drivers/threads.py).
        self.pool = own_pool(2 * limit + _POLL_LANE, "openstack")
        self.extras: dict[str, Any] = {}  # per-loop helpers (the server watcher)


class Provider:
    """One cloud account in this process: its Connection, its call budget, its counters."""

    def __init__(self, spec: CloudSpec, conn: Any, limit: int) -> None:
        self.spec = spec
        self.conn = conn
        self.limit = limit
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self.cache: dict[str, Any] = {}  # lookups that do not change during a command
        conn.session.session.hooks["response"].append(self._count)

    def _count(self, response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        path = (request.path_url or "").split("?")[0]
        with self._lock:
            self.calls[f"{request.method} {path}"] += 1

    def close(self) -> None:
        self.conn.close()

    @property
    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopState(self.limit)
        return state

    async def run(
        self,
        fn: Callable[[], T],
        what: str,
        *,
        retry: frozenset[int] = RETRY_WRITE,
        attempts: int = 6,
        raw: bool = False,
        poll: bool = False,
        servers: bool = False,
    ) -> T:
        """Run a blocking SDK call in a worker thread, with backoff on transient errors.

        ``raw=True`` lets SDK exceptions through (after retries) for callers that handle
        404s or conflicts themselves; otherwise they become one FlotteError. ``poll``:
        the server watcher's lane, not queued behind the account's other calls;
        ``servers``: Nova's server requests, on their own budget.
        """
        state = self.loop_state()
        lane = state.polls if poll else state.servers if servers else state.semaphore
        for attempt in range(attempts):
            try:
                async with lane:
                    return await in_thread(state.pool, fn)
            except Exception as err:
                if attempt + 1 < attempts and is_transient(err, retry):
                    await asyncio.sleep(backoff(err, attempt))
                    continue
                if raw:
                    raise
                raise translate(err, what, self.spec) from err
        raise AssertionError("unreachable")  # pragma: no cover

    async def read(
        self, fn: Callable[[], T], what: str, *, raw: bool = False, poll: bool = False
    ) -> T:
        return await self.run(fn, what, retry=RETRY_READ, raw=raw, poll=poll)


_SHARED = ClientPool()  # providers made outside a driver (flotte image, benchmarks)
_PROVIDERS_LOCK = threading.Lock()


async def provider(
    options: Mapping[str, Any], limit: int = 16, pool: ClientPool | None = None
) -> Provider:
    """The :class:`Provider` for these options in ``pool`` (the installation's, handed to
    the driver), connected and authenticated once per cloud account."""
    spec = cloud_spec(options)
    pool = pool if pool is not None else _SHARED
    key = ("openstack", spec.key)
    found: Provider | None = pool.peek(key)
    if found is not None:
        return found

    def _build() -> Provider:
        conn = connect(spec, pool_size=max(limit * 2, 10))
        # get_token() (not authorize()) keeps keystoneauth's exception types: 401 -> AuthError.
        conn.session.get_token()
        # Create the service proxies now, in one thread, before many threads share them.
        for service in ("compute", "network", "image"):
            getattr(conn, service)
        return Provider(spec, conn, limit)

    async def _connect() -> Provider:
        try:
            built = await asyncio.to_thread(_build)
        except FlotteError:
            raise
        except Exception as err:
            raise translate(err, "connect", spec) from err
        return pool.get(key, lambda: built)

    # One connection for the callers that ask at the same moment: ``machine ls`` asks
    # every node's state at once, and ten nodes made ten logins and ten version lookups.
    return await _CONNECTING.once((id(pool), key), _connect)


_CONNECTING = SingleFlight()


_INJECTED: weakref.WeakKeyDictionary[Any, Provider] = weakref.WeakKeyDictionary()


async def injected(conn: Any, limit: int = 16) -> Provider:
    """The :class:`Provider` around a Connection handed in (``DriverContext.client``)."""
    with _PROVIDERS_LOCK:
        found = _INJECTED.get(conn)
    if found is not None:
        return found
    config = getattr(conn, "config", None)
    auth = getattr(config, "auth", None) or {}
    spec = CloudSpec(
        cloud=getattr(config, "name", None) or None,
        auth={"auth_url": str(auth.get("auth_url", "OpenStack"))},
    )

    def _proxies() -> Provider:
        # As in provider(): make the service proxies in one thread before many share them.
        for service in ("compute", "network", "image"):
            getattr(conn, service)
        return Provider(spec, conn, limit)

    try:
        built = await asyncio.to_thread(_proxies)
    except Exception as err:
        raise translate(err, "connect", spec) from err
    with _PROVIDERS_LOCK:
        return _INJECTED.setdefault(conn, built)


def forget(options: Mapping[str, Any], pool: ClientPool | None = None) -> None:
    """Drop the Provider made for these options (tests, credential changes)."""
    (pool if pool is not None else _SHARED).forget(("openstack", cloud_spec(options).key))
