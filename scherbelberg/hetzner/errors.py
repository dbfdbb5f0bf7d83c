"""Errors a user can act on, each one line: what went wrong and, where known, what to do."""

from __future__ import annotations

from hcloud import APIException


class ScherbelbergError(Exception):
    """Base of the errors scherbelberg raises on purpose (shown without a traceback)."""


class ConfigError(ScherbelbergError):
    """Bad or missing input, found before anything was created."""


class HetznerError(ScherbelbergError):
    """The Hetzner API refused or failed a request."""


def from_api(exc: APIException, doing: str) -> HetznerError:
    code = exc.code
    if code == "unauthorized":
        return HetznerError(f"{doing}: the Hetzner API token was rejected (unauthorized)")
    if code == "rate_limit_exceeded":
        return HetznerError(f"{doing}: Hetzner's rate limit (3600 requests/hour) is exhausted")
    if code == "resource_limit_exceeded":
        return HetznerError(f"{doing}: the project's resource limit is reached ({exc.message})")
    return HetznerError(f"{doing}: {exc.message} ({code})")


class ArgumentError(ConfigError, TypeError):
    """An argument HetznerCluster does not take (a typo, or dask-cloudprovider's name for
    something scherbelberg does differently): a TypeError, as Python's own, with a message
    that names what to use instead."""
