"""Hetzner's error codes: which are worth a retry, and the one line each becomes for a user."""

from __future__ import annotations

from hcloud import APIException

from ..errors import HetznerError

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
