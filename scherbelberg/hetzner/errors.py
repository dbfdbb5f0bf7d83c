"""Errors a user can act on, each one line: what went wrong and, where known, what to do."""

from __future__ import annotations

from hcloud import APIException


class ScherbelbergError(Exception):
    """Base of the errors scherbelberg raises on purpose (shown without a traceback)."""


class ConfigError(ScherbelbergError):
    """Bad or missing input, found before anything was created."""


class HetznerError(ScherbelbergError):
    """The Hetzner API refused or failed a request. `code` is Hetzner's error code
    (`not_found`, `resource_in_use`, …), an HTTP status where the answer had none, or
    `connection` when the API could not be reached; None for our own deadlines."""

    def __init__(self, message: str, code: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code


# What Hetzner's own clients retry (hcloud-python's retry policy, the Terraform provider):
# the request was not carried out, or may be retried safely after a moment.
TRANSIENT_CODES = frozenset(
    {
        "rate_limit_exceeded",
        "conflict",
        "locked",
        "timeout",
        "bad_gateway",
        "server_error",
        "service_error",
        "unavailable",
        "maintenance",
        "connection",
        429,
        500,
        502,
        503,
        504,
    }
)
# codes that promise the request was not carried out at all (safe to repeat even a POST)
NOT_CARRIED_OUT = frozenset(
    {"rate_limit_exceeded", "conflict", "locked", "unavailable", "maintenance", 429, 503}
)


def from_api(exc: APIException, doing: str) -> HetznerError:
    code = exc.code
    if code == "unauthorized":
        message = f"{doing}: the Hetzner API token was rejected (unauthorized)"
    elif code == "rate_limit_exceeded":
        message = f"{doing}: Hetzner's rate limit (3600 requests/hour) is exhausted"
    elif code == "resource_limit_exceeded":
        message = f"{doing}: the project's resource limit is reached ({exc.message})"
    else:
        message = f"{doing}: {exc.message} ({code})"
    return HetznerError(message, code)


class ArgumentError(ConfigError, TypeError):
    """An argument HetznerCluster does not take (a typo, or dask-cloudprovider's name for
    something scherbelberg does differently): a TypeError, as Python's own, with a message
    that names what to use instead."""
