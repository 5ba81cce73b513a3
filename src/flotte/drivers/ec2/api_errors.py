"""What an EC2 API error means: retried, or one line a user can read.

The error codes come from the EC2 API reference (common client errors and throttling);
``is_retryable`` decides what :class:`~flotte.drivers.ec2.connection.Ec2Api` tries
again and ``translate`` turns the rest into flotte's own errors.
"""

from __future__ import annotations

from flotte.errors import (
    AuthError,
    DriverError,
    FlotteError,
    QuotaExceeded,
    Unreachable,
    UsageError,
)

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
