"""Hetzner's rate limit: 3600 requests per project, refilled at one per second, bursts allowed.

A token bucket per project. The clock is injectable and can be frozen through the admin API, so
a test can send 3601 requests "within the window" without racing the refill.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    limit: int = 3600
    refill_per_second: float = 1.0
    clock: Callable[[], float] = time.time
    frozen_at: float | None = None
    _tokens: float = field(init=False)
    _updated: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.limit)
        self._updated = self.now()

    def now(self) -> float:
        return self.frozen_at if self.frozen_at is not None else self.clock()

    def freeze(self, frozen: bool) -> None:
        self._refill()
        self.frozen_at = self.now() if frozen else None
        self._updated = self.now()

    def _refill(self) -> None:
        now = self.now()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.limit), self._tokens + elapsed * self.refill_per_second)
        self._updated = now

    def take(self) -> bool:
        """Spend one request; False when the allowance is used up."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    @property
    def remaining(self) -> int:
        self._refill()
        return math.floor(self._tokens)

    @property
    def reset_at(self) -> int:
        """UNIX time at which the allowance is full again."""
        self._refill()
        missing = float(self.limit) - self._tokens
        return math.ceil(self.now() + missing / self.refill_per_second)

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_at),
        }
