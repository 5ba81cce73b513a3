"""One exception tree for everything flotte reports to a user.

    FlotteError                 a message a user can act on (exit code 1)
    ├── UsageError              bad input: names, counts, flags, files (exit 2)
    │   ├── NotFound            a machine, cluster, template, node... that does not exist
    │   ├── AlreadyExists       a name already taken
    │   ├── ConfigError         a config or data file that does not validate
    │   └── PlanError           the desired state cannot be planned (hosts, counts, roles)
    ├── Busy                    another flotte command holds the lock on this object
    ├── DriverError             a driver's infrastructure call failed
    │   ├── Unreachable         the Docker engine, SSH host or cloud API cannot be reached
    │   ├── AuthError           credentials refused or missing
    │   └── QuotaExceeded       the target cannot hold what was asked for
    ├── ProvisionError          a node was created but could not be made a Docker host
    ├── ClusterError            the COE (Swarm, k3s) could not be formed or changed
    ├── TimeoutError_           a wait ran out of time
    ├── PlanFailed              the executor finished with errors; carries each of them
    ├── state.database.StateError   the state database is damaged, newer or read-only
    └── pki.CertificateError        the CA, client or engine certificates do not match

Every error keeps its cause (``raise ... from err``); the CLI prints ``str(err)`` as
one line and shows the trace only with ``--debug``.
"""

from __future__ import annotations


class FlotteError(Exception):
    """An error a user can act on: its message says what is wrong and what to do."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(FlotteError):
    exit_code = 2


class NotFound(UsageError):
    pass


class AlreadyExists(UsageError):
    pass


class ConfigError(UsageError):
    pass


class PlanError(UsageError):
    pass


class Busy(FlotteError):
    exit_code = 3


class DriverError(FlotteError):
    pass


class Unreachable(DriverError):
    pass


class AuthError(DriverError):
    pass


class QuotaExceeded(DriverError):
    pass


class ProvisionError(FlotteError):
    pass


class ClusterError(FlotteError):
    pass


class TimeoutError_(FlotteError):
    pass


class PlanFailed(FlotteError):
    """The executor ran to the end with failures; ``errors`` maps step name to error."""

    def __init__(self, message: str, errors: dict[str, BaseException]) -> None:
        super().__init__(message)
        self.errors = errors

    def __str__(self) -> str:
        first = next(iter(self.errors.items()), None)
        if first is None:
            return self.message
        name, err = first
        more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        return f"{self.message}: {name}: {err}{more}"
