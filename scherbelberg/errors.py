"""Every error scherbelberg raises on purpose, in one place.

All derive from `ScherbelbergError`, whose message is one line a user can act on (the CLI
shows it without a traceback). Code that must tell errors apart matches these classes and
`HetznerError.code`, never message text. Only the standard library is imported here, so
`scherbelberg --help` stays fast.
"""

from __future__ import annotations


class ScherbelbergError(Exception):
    """Base of the errors scherbelberg raises on purpose (shown without a traceback)."""


class ConfigError(ScherbelbergError, ValueError):
    """Bad or missing input, found before anything was created (a ValueError, as Python's
    own checks of bad values are)."""


class ArgumentError(ConfigError, TypeError):
    """An argument HetznerCluster does not take (a typo, or dask-cloudprovider's name for
    something scherbelberg does differently): a TypeError, as Python's own, with a message
    that names what to use instead."""


class HetznerError(ScherbelbergError):
    """The Hetzner API refused or failed a request. `code` is Hetzner's error code
    (`not_found`, `resource_in_use`, …), an HTTP status where the answer had none, or
    `connection` when the API could not be reached; None for our own deadlines."""

    def __init__(self, message: str, code: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code


class BootstrapError(ScherbelbergError):
    """A node did not come up; the message carries the tail of its logs."""


class VersionMismatch(ScherbelbergError):
    """Client, scheduler and workers run different Python or package versions."""


class ClusterNotFound(ScherbelbergError, LookupError):
    """No state is stored under this cluster name."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        super().__init__(f"no cluster named {name!r} is known here (looked in {where})")


class EmulatorError(ScherbelbergError, RuntimeError):
    """The local Hetzner (the emulator) or one of its machines failed."""


class EmulatorInputError(EmulatorError, ValueError):
    """The local Hetzner was given a setting or request part it cannot take."""


class StateError(ScherbelbergError, ValueError):
    """A cluster's local state (under the state dir) is unreadable or would be unsafe."""


class DeadlineExceeded(ScherbelbergError, TimeoutError):
    """A wait ran past its deadline (every wait here has one)."""
