"""flotte's logging: ``--debug`` raises flotte's own loggers; everything is redacted.

Libraries log what they send and receive at DEBUG: botocore its signed requests (the
access key id, the session token), openstacksdk its request and response bodies (a new
user's password, a key pair's private key). ``--debug`` therefore raises only the
``flotte`` loggers; ``FLOTTE_DEBUG_LIBRARIES=botocore,openstack`` raises named library
loggers too, for when their traffic is what needs looking at.

Every record, flotte's or a library's, goes through :class:`Redactor` before it is
written: it masks what looks like a secret (AWS key ids and secrets, tokens, passwords
in URLs, headers, JSON, query strings and XML, private keys) and every value registered
with :func:`add_secret` (the secret options a command was given).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable

MASK = "***"
LIBRARIES_ENV = "FLOTTE_DEBUG_LIBRARIES"

# Names whose values are secrets, in any spelling (X-Auth-Token, adminPass, aws_secret_
# access_key, application_credential_secret, SecretAccessKey, private_key...).
_NAME = (
    r"[\w.-]{0,40}(?:pass(?:word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|"
    r"private[_-]?key|credential|signature|key[_-]?material|cookie)[\w.-]{0,40}"
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys, with real or escaped newlines, even cut short
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
        ),
        "-----PRIVATE KEY " + MASK + "-----",
    ),
    # AWS access key ids (long-term AKIA, temporary ASIA, and the other id kinds)
    (re.compile(r"\b(A(?:KIA|SIA|GPA|IDA|ROA|IPA|NPA|NVA|PKA))[A-Z0-9]{12,}\b"), r"\1" + MASK),
    # user:password@ in URLs
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(@)", re.I), r"\1" + MASK + r"\2"),
    # Authorization headers and their schemes (Basic, Bearer, AWS4-HMAC-SHA256...)
    (
        re.compile(r"(\bauthorization['\"]?\s*[:=]\s*(?-i:b)?['\"]?)[^'\"\n,}]+", re.I),
        r"\1" + MASK,
    ),
    # XML elements: <SecretAccessKey>...</SecretAccessKey>, <keyMaterial>...</keyMaterial>
    (re.compile(rf"(<({_NAME})>)[^<]*(</\2>)", re.I), r"\1" + MASK + r"\3"),
    # JSON / Python reprs: "password": "x", 'X-Amz-Security-Token': b'x'
    (
        re.compile(rf"""(['"]{_NAME}['"]\s*:\s*b?)(['"])(?:\\.|(?!\2).)*\2""", re.I),
        r"\1\2" + MASK + r"\2",
    ),
    # headers, query strings, key=value, key: value (x-amz-security-token:abc, k=v&...)
    (
        re.compile(
            rf"""((?<![\w.-]){_NAME}\s*[:=]\s*)(?!{re.escape(MASK)})[^\s'",;&}}\]<]+""", re.I
        ),
        r"\1" + MASK,
    ),
]


class Redactor(logging.Filter):
    """Masks secrets in a record's message, arguments, traceback and stack."""

    def __init__(self) -> None:
        super().__init__()
        self._literals: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if value and len(value) >= 4:  # a 1-3 character "secret" would mask half the log
            with self._lock:
                self._literals.add(value)

    def redact(self, text: str) -> str:
        with self._lock:
            literals = sorted(self._literals, key=len, reverse=True)
        for value in literals:
            text = text.replace(value, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a library's bad format string: keep what can be kept
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


REDACTOR = Redactor()


def add_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in a log record from now on."""
    if value:
        REDACTOR.add(str(value))


def redact(text: str) -> str:
    """``text`` with every secret masked (for messages built outside logging, too)."""
    return REDACTOR.redact(text)


def setup(debug: bool = False, libraries: Iterable[str] | None = None) -> logging.Handler:
    """One redacting handler on stderr; DEBUG for flotte only (and named libraries).

    Without ``--debug`` it still replaces Python's last-resort handler, so a library's
    warning is redacted too. Returns the handler (tests attach it to a stream).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(REDACTOR)
    fmt = "%(asctime)s %(name)s %(levelname)s %(message)s" if debug else "%(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_flotte", False)]:
        root.removeHandler(old)
    handler._flotte = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("flotte").setLevel(logging.DEBUG if debug else logging.WARNING)
    if libraries is None:
        libraries = [n.strip() for n in os.environ.get(LIBRARIES_ENV, "").split(",")]
    for name in libraries:
        if name:
            logging.getLogger(name).setLevel(logging.DEBUG)
    return handler
