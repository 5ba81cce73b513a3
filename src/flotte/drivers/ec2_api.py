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

Client-side token buckets mirror AWS's documented per-account buckets (mutating and
non-mutating request rates, the RunInstances resource bucket of 1,000 instances
refilling at 2/s) so a 50- or 500-node create paces itself instead of being throttled.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flotte.errors import (
    AuthError,
    DriverError,
    FlotteError,
    QuotaExceeded,
    TimeoutError_,
    Unreachable,
    UsageError,
)

log = logging.getLogger(__name__)

THROTTLING = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "EC2ThrottledException",
    }
)
TRANSIENT = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "ServerInternal",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
AUTH = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "OptInRequired",
        "Blocked",
        "PendingVerification",
        "AccessDenied",
        "ExpiredToken",
        "RequestExpired",
    }
)
QUOTA = frozenset(
    {
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "AddressLimitExceeded",
        "RulesPerSecurityGroupLimitExceeded",
        "SecurityGroupLimitExceeded",
        "VolumeLimitExceeded",
        "ResourceLimitExceeded",
        "KeyPairLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "InsufficientInstanceCapacity",
        "InsufficientAddressCapacity",
        "InsufficientFreeAddressesInSubnet",
        "TagLimitExceeded",
    }
)
# Bad input the user can fix; EC2 names them InvalidSomething.Malformed / .NotFound.
USAGE_PREFIXES = (
    "InvalidAMIID",
    "InvalidInstanceType",
    "InvalidParameter",
    "InvalidSubnetID",
    "InvalidVpcID",
    "InvalidKeyPair",
    "InvalidAvailabilityZone",
    "InvalidBlockDeviceMapping",
    "InvalidUserData",
    "InvalidGroup",
    "MissingParameter",
    "Unsupported",
    "InvalidRegion",
)

# Actions that only read; AWS meters them in a separate, larger bucket.
_READ_PREFIXES = ("Describe", "Get", "List")


@dataclass
class RetryPolicy:
    attempts: int = 10
    base: float = 0.2  # seconds; full jitter: sleep uniform(0, min(cap, base * 2**n))
    cap: float = 20.0
    eventual_timeout: float = 60.0  # how long a just-made resource may stay invisible

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.cap, self.base * 2**attempt))


class TokenBucket:
    """A thread-safe token bucket; ``take(n)`` returns how long to wait for ``n`` tokens."""

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self._tokens = capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: float = 1.0) -> float:
        n = min(n, self.capacity)
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n  # may go negative: later callers queue behind this one
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class Buckets:
    """AWS's per-account, per-region request buckets: one per API action.

    Sizes follow AWS's EC2 throttling documentation: non-mutating actions 100 tokens
    refilled at 20/s; mutating actions the conservative 50 at 5/s; RunInstances 5 at
    2/s plus its resource bucket of 1,000 instances refilled at 2/s.
    """

    RUN_INSTANCES = (5.0, 2.0)
    READ = (100.0, 20.0)
    WRITE = (50.0, 5.0)

    def __init__(self) -> None:
        self._by_action: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self.run_instances = TokenBucket(1000, 2)  # instances, not requests

    def request(self, action: str) -> TokenBucket:
        with self._lock:
            bucket = self._by_action.get(action)
            if bucket is None:
                if action == "RunInstances":
                    size = self.RUN_INSTANCES
                elif action.startswith(_READ_PREFIXES):
                    size = self.READ
                else:
                    size = self.WRITE
                bucket = self._by_action[action] = TokenBucket(*size)
            return bucket


_BUCKETS: dict[tuple[str, str, str], Buckets] = {}
_BUCKETS_LOCK = threading.Lock()


def buckets_for(profile: str, region: str, endpoint: str) -> Buckets:
    """One set of buckets per account+region in this process (keyed by what we know)."""
    key = (profile, region, endpoint)
    with _BUCKETS_LOCK:
        return _BUCKETS.setdefault(key, Buckets())


def error_code(err: BaseException) -> str:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def error_message(err: BaseException) -> str:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Message", "")) or str(err)
    return str(err)


def _status(err: BaseException) -> int:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def is_retryable(err: BaseException) -> bool:
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )
    from botocore.parsers import ResponseParserError

    if isinstance(
        err,
        ConnectionClosedError | ReadTimeoutError | ResponseParserError | ConnectTimeoutError,
    ):
        return True
    if isinstance(err, EndpointConnectionError):
        return True
    code = error_code(err)
    if code in QUOTA or code in AUTH or code.startswith(USAGE_PREFIXES):
        return False  # a capacity error sent as 5xx will not pass by retrying at once
    return code in THROTTLING or code in TRANSIENT or _status(err) >= 500


def translate(err: BaseException, action: str, where: str) -> FlotteError:
    """One clear line for a boto error; the cause stays attached by the caller."""
    from botocore.exceptions import (
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    if isinstance(err, FlotteError):
        return err
    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return AuthError(
            f"no usable AWS credentials for {where}",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, use --ec2-profile, "
            "or add them to ~/.aws/credentials",
        )
    if isinstance(err, ProfileNotFound):
        return AuthError(f"{err}", hint="check --ec2-profile against ~/.aws/config")
    if isinstance(err, NoRegionError):
        return UsageError("no EC2 region given", hint="pass --ec2-region or set AWS_DEFAULT_REGION")
    if isinstance(err, EndpointConnectionError):
        return Unreachable(f"cannot reach the EC2 API at {where}: {err}")
    code = error_code(err)
    message = error_message(err)
    if code in AUTH:
        return AuthError(f"{where} refused the credentials for {action}: {code}: {message}")
    if code in QUOTA:
        return QuotaExceeded(f"{where}: {action} hit a limit: {code}: {message}")
    if code.startswith(USAGE_PREFIXES):
        return UsageError(f"{where}: {action}: {code}: {message}")
    if code in THROTTLING:
        return DriverError(f"{where} kept throttling {action} ({code}); try again later")
    if code:
        return DriverError(f"{where}: {action} failed: {code}: {message}")
    return DriverError(f"{where}: {action} failed: {message}")


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
                    result: dict[str, Any] = await asyncio.to_thread(fn, **params)
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
