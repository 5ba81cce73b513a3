"""Client-side pacing: AWS's per-account request buckets, mirrored here.

Client-side token buckets mirror AWS's documented per-account buckets (mutating and
non-mutating request rates, the RunInstances resource bucket of 1,000 instances
refilling at 2/s) so a 50- or 500-node create paces itself instead of being throttled.
"""

from __future__ import annotations

import threading
import time

# Actions that only read; AWS meters them in a separate, larger bucket.
_READ_PREFIXES = ("Describe", "Get", "List")


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
