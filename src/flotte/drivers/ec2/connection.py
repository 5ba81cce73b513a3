"""One EC2 endpoint as flotte calls it: retries, rate limits, errors a user can read.

boto3 clients block, so each call runs in a worker thread behind a semaphore bounded per
endpoint. botocore's own retries are switched off (``total_max_attempts=1``) so that
this module is the one place that decides what is retried and so every HTTP attempt is
counted once (the benchmark reports them).

What is retried, with full-jitter exponential backoff:
- throttling (``RequestLimitExceeded`` and friends) and 5xx answers, connection resets,
  unparseable bodies: the cloud had a bad moment;
- ``*.NotFound`` for a resource flotte just made, when the caller says so
  (``eventual=True``): the EC2 API is eventually consistent and an instance ID can be
  unknown to DescribeInstances for a few seconds after RunInstances returned it.

A call that failed with a 5xx may still have happened; callers make every mutation
adoptable (tags at creation, describe-before-create) so a retried create converges
instead of duplicating.

Calls are paced by the per-account request buckets of :mod:`.pacing`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flotte.config import write_secret
from flotte.drivers.base import DriverContext
from flotte.drivers.ec2 import options as cfg
from flotte.drivers.ec2.api_errors import error_code, is_retryable, translate
from flotte.drivers.ec2.pacing import Buckets, buckets_for
from flotte.drivers.threads import in_thread, own_pool
from flotte.errors import (
    FlotteError,
    TimeoutError_,
    UsageError,
)
from flotte.models import Owner

log = logging.getLogger(__name__)


def group_key(owner: Owner) -> str:
    """Short stable name part for the group's resources: unique per installation."""
    who = owner.cluster or owner.machine or "default"
    digest = hashlib.sha256(f"{owner.installation}/{who}".encode()).hexdigest()[:8]
    return f"{who}-{digest}"


@dataclass
class RetryPolicy:
    attempts: int = 10
    base: float = 0.2  # seconds; full jitter: sleep uniform(0, min(cap, base * 2**n))
    cap: float = 20.0
    eventual_timeout: float = 60.0  # how long a just-made resource may stay invisible

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.cap, self.base * 2**attempt))


class Ec2Api:
    """Async calls on one boto3 EC2 client, with retries, pacing and counting."""

    def __init__(
        self,
        client: Any,
        *,
        where: str,
        buckets: Buckets | None = None,
        max_parallel: int = 16,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.where = where  # "region us-east-1" / "https://fcu.eu-west-2.outscale.com"
        self.buckets = buckets or Buckets()
        self.retry = retry or RetryPolicy()
        self._max_parallel = max_parallel
        self._sem: asyncio.Semaphore | None = None
        self._pool = own_pool(max_parallel, "ec2")  # a thread per call allowed at once
        self._sleep = sleep
        self._rng = random.Random()
        self.calls: Counter[str] = Counter()  # logical calls by action
        self.attempts = 0  # HTTP attempts, retries included
        self.retries: Counter[str] = Counter()  # by action: a retried mutation may have happened

    def _semaphore(self) -> asyncio.Semaphore:
        # Made lazily: the driver may be built outside the loop that later uses it.
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._max_parallel)
        return self._sem

    def _pace(self, action: str, params: dict[str, Any]) -> float:
        wait = self.buckets.request(action).take()
        if action == "RunInstances":
            wait = max(wait, self.buckets.run_instances.take(float(params.get("MaxCount", 1))))
        return wait

    async def call(
        self,
        method: str,
        *,
        eventual: bool = False,
        ignore: tuple[str, ...] = (),
        attempts: int | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Call ``client.<method>(**params)``; codes in ``ignore`` return ``{}``."""
        limit = attempts or self.retry.attempts
        action = "".join(part.title() for part in method.split("_"))
        fn = getattr(self.client, method)
        self.calls[action] += 1
        attempt = 0
        started = time.monotonic()
        while True:
            wait = self._pace(action, params)
            if wait > 0:
                await self._sleep(wait)
            try:
                async with self._semaphore():
                    self.attempts += 1
                    result: dict[str, Any] = await in_thread(self._pool, fn, **params)
                return result
            except Exception as err:
                code = error_code(err)
                if code and code in ignore:
                    return {}
                not_yet = eventual and code.endswith(".NotFound")
                if not_yet:
                    if time.monotonic() - started >= self.retry.eventual_timeout:
                        raise TimeoutError_(
                            f"{self.where}: {action}: still {code} after "
                            f"{self.retry.eventual_timeout:.0f} s"
                        ) from err
                elif not is_retryable(err) or attempt + 1 >= limit:
                    raise translate(err, action, self.where) from err
                delay = self.retry.delay(min(attempt, 6), self._rng)
                log.debug("%s: %s failed with %s, retry in %.2f s", self.where, action, code, delay)
                attempt += 1
                self.retries[action] += 1
                await self._sleep(delay)

    async def pages(
        self, method: str, key: str, *, eventual: bool = False, **params: Any
    ) -> list[dict[str, Any]]:
        """Every item under ``key`` across NextToken pages."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            if token:
                params["NextToken"] = token
            page = await self.call(method, eventual=eventual, **params)
            items.extend(page.get(key, []))
            token = page.get("NextToken")
            if not token:
                return items


def make_client(tgt: cfg.Target, *, max_parallel: int) -> Any:
    """A boto3 EC2 client for ``tgt``: standard credential chain, or the saved key file."""
    import json

    import boto3
    import botocore.session
    from botocore.config import Config

    keys: dict[str, str] = dict(tgt.keys)
    if not keys and tgt.credentials_file and Path(tgt.credentials_file).exists():
        saved = json.loads(Path(tgt.credentials_file).read_text())
        keys = {k: v for k, v in saved.items() if v}
    core = botocore.session.Session()
    # botocore reads every timestamp (each instance has four) through dateutil's general
    # parser: at 1,000 instances, 0.7 s of CPU for one DescribeInstances
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
    session = boto3.session.Session(
        profile_name=tgt.profile, region_name=tgt.region, botocore_session=core, **keys
    )
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},  # ec2_api retries
        max_pool_connections=max_parallel + 4,
        connect_timeout=10,
        read_timeout=60,
        user_agent_extra="flotte",
    )
    return session.client("ec2", endpoint_url=tgt.endpoint_url, config=config)


def _timestamp(value: str) -> datetime:
    """An API timestamp: the ISO 8601 form EC2 answers with, else botocore's own parser."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        from botocore.utils import parse_timestamp

        parsed: datetime = parse_timestamp(value)
        return parsed


def _read_secret(path: Path) -> str:
    """The secret key in a file (first line), or one line saying why it cannot be read."""
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or "not a text file"
        raise UsageError(f"cannot read --ec2-secret-key-file {path}: {reason}") from err
    secret = text.splitlines()[0].strip() if text else ""
    if not secret:
        raise UsageError(f"--ec2-secret-key-file {path} is empty")
    return secret


def _pool_key(tgt: cfg.Target) -> tuple[str, ...]:
    """The installation-wide client of ``tgt``: a target compares without its credentials
    (one driver has one set), but two machines may each have their own keys."""
    creds = hashlib.sha256(repr((tgt.credentials_file, tgt.keys)).encode()).hexdigest()
    return ("ec2", tgt.cloud, tgt.region, tgt.endpoint_url or "", tgt.profile or "", creds)


class Clients:
    """The EC2 APIs of one driver: one per target, on a boto3 client handed in
    (``DriverContext.client``) or made from the options (profile, environment, key file)."""

    def __init__(self, ctx: DriverContext, client: Any, max_parallel: int) -> None:
        self.ctx = ctx
        self._client = client
        self.max_parallel = max_parallel
        self._apis: dict[cfg.Target, Ec2Api] = {}

    def settings(self, *extra: Mapping[str, Any] | None) -> dict[str, Any]:
        """ctx options < group options < node options; keys given as flags or a file are
        moved out of the options into ``ec2_keys`` (memory only, see ``save_keys``)."""
        merged: dict[str, Any] = {}
        for source in (self.ctx.options, *extra):
            for key, value in (source or {}).items():
                if value not in (None, (), []):
                    merged[key] = value
        access = merged.pop("ec2_access_key", None)
        secret = merged.pop("ec2_secret_key", None)
        token = merged.pop("ec2_session_token", None)
        secret_file = merged.pop("ec2_secret_key_file", None)
        if secret_file and not secret:
            secret = _read_secret(Path(str(secret_file)).expanduser())
        if (secret or token) and not access:
            raise UsageError(
                "an EC2 secret key needs its access key ID: give --ec2-access-key",
                hint="or leave both out and use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                "or --ec2-profile",
            )
        if access:
            if not secret:
                raise UsageError(
                    "--ec2-access-key needs its secret: give --ec2-secret-key-file "
                    "(or --ec2-secret-key)"
                )
            keys = {
                "aws_access_key_id": str(access),
                "aws_secret_access_key": str(secret),
                "aws_session_token": str(token or ""),
            }
            merged["ec2_keys"] = tuple((k, v) for k, v in keys.items() if v)
        return merged

    def _keys_path(self, owner: Owner) -> Path:
        return self.ctx.home / "ec2" / "credentials" / f"{group_key(self.owner(owner))}.json"

    def save_keys(self, tgt: cfg.Target, owner: Owner) -> str | None:
        """Keep keys given as flags or a file for later commands (rm, stop...): one 0600
        file per group, removed with it (``forget_keys``). None when there are none."""
        if not tgt.keys:
            return tgt.credentials_file
        path = self._keys_path(owner)
        data = json.dumps(dict(tgt.keys)).encode()
        if not path.exists() or path.read_bytes() != data:
            write_secret(path, data)
        return str(path)

    def forget_keys(self, owner: Owner) -> None:
        self._keys_path(owner).unlink(missing_ok=True)

    def target(self, settings: Mapping[str, Any]) -> cfg.Target:
        return cfg.target(settings)

    def api(self, tgt: cfg.Target) -> Ec2Api:
        """The retrying, paced API for ``tgt`` (one per target in this driver)."""
        found = self._apis.get(tgt)
        if found is not None:
            return found
        client = (
            self._client
            if self._client is not None
            # one boto3 client per region and account for every driver of the installation
            else self.ctx.clients.get(_pool_key(tgt), lambda: self._make_client(tgt))
        )
        api = Ec2Api(
            client,
            where=tgt.where,
            buckets=buckets_for(tgt.profile or "", tgt.region, tgt.endpoint_url or ""),
            max_parallel=self.max_parallel,
            retry=RetryPolicy(),
        )
        self._apis[tgt] = api
        return api

    def _make_client(self, tgt: cfg.Target) -> Any:
        try:
            client = make_client(tgt, max_parallel=self.max_parallel)
            creds = client._request_signer._credentials
        except FlotteError:
            raise
        except Exception as err:
            raise translate(err, "setup", tgt.where) from err
        if creds is None:
            from botocore.exceptions import NoCredentialsError

            raise translate(NoCredentialsError(), "setup", tgt.where)
        return client

    def api_calls(self) -> Counter[str]:
        """Logical API calls by action made through this driver (for benchmarks)."""
        total: Counter[str] = Counter()
        for api in self._apis.values():
            total.update(api.calls)
        return total

    def api_for(self, data: Mapping[str, Any]) -> Ec2Api:
        """The API a stored node or group was made through (rm needs no flags again)."""
        if data.get("region"):
            profile = self.ctx.options.get("ec2_profile") or data.get("profile")
            return self.api(
                cfg.Target(
                    cloud=data.get("cloud") or "aws",
                    region=data["region"],
                    endpoint_url=data.get("endpoint_url"),
                    profile=profile or None,
                    credentials_file=data.get("credentials_file"),
                )
            )
        return self.api(self.target(self.settings()))

    def owner(self, owner: Owner) -> Owner:
        """``owner`` with this installation's id when it has none."""
        if owner.installation:
            return owner
        return dataclasses.replace(owner, installation=self.ctx.installation)
