"""Password hashing for standalone users: argon2id (argon2-cffi), never stored in clear."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from flotte.errors import UsageError

# argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane): the library's default
# (64 MiB, 4 lanes) took 0.8-1.5 s per login on this 2-core machine under load.
# A hash carries its parameters, so hashes made with others still verify.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
MIN_LENGTH = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise UsageError(f"a password needs at least {MIN_LENGTH} characters")
    return _HASHER.hash(password)


@cache
def _dummy() -> str:
    return _HASHER.hash("flotte: a user that does not exist")


def verify_password(hashed: str | None, password: str) -> bool:
    """Whether ``password`` matches ``hashed``; with no hash (an unknown user) the same
    work is done against a dummy, so timing does not tell which user names exist."""
    if hashed is None:
        _verify(_dummy(), password)
        return False
    return _verify(hashed, password)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
