"""How long a cluster may live: a TTL (`ttl="8h"`) and an idle timeout (`idle_timeout="30m"`).

Why labels: whoever deletes a cluster that outlived its welcome (the client process while it
lives, `scherbelberg reap` from cron, or the reaper on the scheduler node) must know its limits
without the process that made it. So both are written onto every resource of the cluster as
labels — the deadline as Unix seconds, the idle timeout as seconds — and read back from there.

Idleness is the scheduler's own view: no task processing, queued or waiting, and no client
connected, for `idle_timeout` seconds (see `bootstrap/idle.py`, which runs on the scheduler).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..hetzner import labels

EXPIRES = f"{labels.PREFIX}/expires"  # Unix seconds after which the cluster is deleted
IDLE_TIMEOUT = f"{labels.PREFIX}/idle-timeout"  # seconds idle (no tasks, no clients)
REAPER = f"{labels.PREFIX}/reaper"  # "node": a reaper runs on the scheduler


def parse_duration(value: str | float | int | None, what: str) -> float | None:
    """`90s`, `2m`, `8h`, `1d` (or seconds as a number) -> seconds; None stays None."""
    if value is None or value == "":
        return None
    from dask.utils import parse_timedelta

    try:
        seconds = float(parse_timedelta(value, default="s"))
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{what} {value!r} is not a duration (write it like 90s, 2m, 8h or 1d)"
        ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{what} must be a positive duration, not {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The short form users write: 90s, 2m, 8h, 1d (rounded to the unit that fits)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 120:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


@dataclass(frozen=True)
class Lifetime:
    """A cluster's limits: `expires` (Unix seconds) and `idle_timeout` (seconds)."""

    expires: float | None = None
    idle_timeout: float | None = None
    reaper: str = "client"  # "client" (this process, `reap`) or "node" (also the scheduler)

    @classmethod
    def start(
        cls,
        ttl: float | None,
        idle_timeout: float | None,
        reaper: str = "client",
        now: float | None = None,
    ) -> Lifetime:
        if reaper not in ("client", "node"):
            raise ConfigError(f"reaper must be 'client' or 'node', not {reaper!r}")
        if reaper == "node" and ttl is None and idle_timeout is None:
            raise ConfigError("reaper='node' needs a ttl or an idle_timeout to act on")
        expires = None if ttl is None else math.ceil((now or time.time()) + ttl)
        return cls(expires, idle_timeout, reaper)

    @property
    def limited(self) -> bool:
        return self.expires is not None or self.idle_timeout is not None

    def labels(self) -> dict[str, str]:
        found = {}
        if self.expires is not None:
            found[EXPIRES] = str(int(self.expires))
        if self.idle_timeout is not None:
            found[IDLE_TIMEOUT] = str(int(self.idle_timeout))
        if self.reaper == "node":
            found[REAPER] = "node"
        return found

    @classmethod
    def from_labels(cls, found: Mapping[str, str]) -> Lifetime:
        def number(key: str) -> float | None:
            try:
                return float(found[key])
            except (KeyError, ValueError):
                return None

        return cls(number(EXPIRES), number(IDLE_TIMEOUT), found.get(REAPER, "client"))

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (now or time.time()) >= self.expires

    def idle_too_long(self, idle_for: float | None) -> bool:
        return (
            self.idle_timeout is not None
            and idle_for is not None
            and (idle_for >= self.idle_timeout)
        )


@dataclass(frozen=True)
class LifetimeSettings:
    """What the user asked for, before the cluster exists (durations in seconds)."""

    ttl: float | None
    idle_timeout: float | None
    reaper: str
    reaper_endpoint: str | None

    def start(self, now: float | None = None) -> Lifetime:
        return Lifetime.start(self.ttl, self.idle_timeout, self.reaper, now)


def resolve(
    ttl: str | float | None = None,
    idle_timeout: str | float | None = None,
    reaper: str | None = None,
    reaper_endpoint: str | None = None,
) -> LifetimeSettings:
    """Arguments over the `scherbelberg` dask config (`ttl`, `idle-timeout`, `reaper`)."""
    from .. import config

    settings = LifetimeSettings(
        ttl=parse_duration(config.get("ttl", ttl), "ttl"),
        idle_timeout=parse_duration(config.get("idle-timeout", idle_timeout), "idle_timeout"),
        reaper=str(config.get("reaper", reaper) or "client"),
        reaper_endpoint=config.get("reaper-endpoint", reaper_endpoint),
    )
    settings.start()  # checks the combination now, before anything is made
    return settings


def idle_seconds(status: dict[str, Any]) -> float | None:
    """Seconds idle from the scheduler's `scherbelberg_idle` answer (None: busy or clients)."""
    if status.get("busy") or status.get("clients"):
        return None
    value = status.get("idle_for")
    return None if value is None else float(value)
