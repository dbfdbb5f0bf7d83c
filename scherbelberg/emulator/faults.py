"""Fault injection: make the local Hetzner fail the way the real one sometimes does.

One `Faults` object is shared by the wire layer (HTTP errors and slow answers) and the model
(actions that end in `error`, servers stuck in `initializing`, types sold out in a location,
machines dying). It can be set at start (CLI options) and changed at run time (admin endpoint).
"""

from __future__ import annotations

import fnmatch
import random
import re
from dataclasses import dataclass, field
from typing import Any

from scherbelberg.errors import EmulatorInputError

# HTTP codes that a fault may produce, with the Hetzner error code each one carries
FAULT_CODES: dict[int, str] = {
    429: "rate_limit_exceeded",
    500: "server_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "timeout",
}


SLOW = 200  # an HttpFault with this status answers normally, after its delay
NO_ANSWER = 0  # ... with this one never answers: after its delay the connection is closed
KINDS = {SLOW: "slow", NO_ANSWER: "no_answer"}  # the statuses that are not errors


@dataclass
class HttpFault:
    """Answer matching requests with an error instead of serving them.

    `path` is a regular expression matched against the path below /v1 (e.g. `^/servers$`);
    `status` one of FAULT_CODES, or SLOW (served, late) or NO_ANSWER (a request that times out:
    no answer for `delay` seconds, then the connection closes); `delay` seconds to wait first;
    `count` limits how many times it fires; `burst`: once drawn, it also answers the next
    `burst - 1` matching requests (429s come in runs when a limit is hit).
    """

    path: str = ".*"
    method: str = "*"
    status: int = 503
    rate: float = 1.0
    delay: float = 0.0
    count: int | None = None
    burst: int = 1
    _pending: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.status, str):  # "no_answer" / "slow" read better in YAML and JSON
            named = {name: status for status, name in KINDS.items()}
            if self.status not in named:
                raise EmulatorInputError(f"unknown fault status {self.status!r}")
            self.status = named[self.status]
        if self.status not in FAULT_CODES and self.status not in KINDS:
            raise EmulatorInputError(
                f"fault status must be one of {sorted(FAULT_CODES)}, {SLOW} (a slow answer) "
                f"or {NO_ANSWER} (no answer)"
            )
        if not 0.0 <= self.rate <= 1.0:
            raise EmulatorInputError("fault rate must be between 0 and 1")
        if self.delay < 0 or self.burst < 1:
            raise EmulatorInputError("fault delay must be >= 0 and burst >= 1")
        re.compile(self.path)

    @property
    def code(self) -> str:
        return FAULT_CODES.get(self.status) or KINDS[self.status]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "method": self.method,
            "status": self.status,
            "rate": self.rate,
            "delay": self.delay,
            "count": self.count,
            "burst": self.burst,
        }

    def matches(self, method: str, path: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.method not in ("*", method.upper()):
            return False
        return re.search(self.path, path) is not None


@dataclass
class Faults:
    http: list[HttpFault] = field(default_factory=list)
    # action command (e.g. "create_server") -> probability that it ends in `error`
    failing_actions: dict[str, float] = field(default_factory=dict)
    # servers whose name matches this regex never leave `initializing`
    stuck_initializing: str | None = None
    # (server type name, location name) pairs that answer `resource_unavailable`
    unavailable: set[tuple[str, str]] = field(default_factory=set)
    # seconds after a server's deletion during which deleting a firewall, network or placement
    # group it was attached to answers 422 resource_in_use (hetzner-reality.md, "Release lag");
    # None: the latency profile's
    release_delay: float | None = None
    # servers whose name matches this regex lose their first DHCP try in private networks: the
    # network's DHCP server ignores them for `dhcp_try_seconds` from their first request (a
    # Debian guest's one try lasts dhclient's timeout, 60 s), and the image's hc-utils does not
    # try again (hetzner-reality.md, "A failed single DHCP try is not retried")
    dhcp_first_try_lost: str | None = None
    dhcp_try_seconds: float = 60.0
    # low-rate errors, 429 bursts and slow answers on every path (`chaos_faults`)
    chaos: bool = False
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _chaos: list[HttpFault] = field(default_factory=lambda: chaos_faults(), init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)
        if self.release_delay is not None and self.release_delay < 0:
            raise EmulatorInputError("release_delay must be >= 0")
        if self.dhcp_try_seconds < 0:
            raise EmulatorInputError("dhcp_try_seconds must be >= 0")
        if self.dhcp_first_try_lost is not None:
            re.compile(self.dhcp_first_try_lost)

    def http_fault_for(self, method: str, path: str) -> HttpFault | None:
        """The fault that answers this request instead of its handler, if any.

        A burst under way answers first; otherwise every matching fault draws in order.
        """
        faults = self.http + (self._chaos if self.chaos else [])
        fired = next((f for f in faults if f._pending > 0 and f.matches(method, path)), None)
        if fired is not None:
            fired._pending -= 1
        else:
            fired = next(
                (f for f in faults if f.matches(method, path) and self._rng.random() < f.rate),
                None,
            )
            if fired is None:
                return None
            fired._pending = fired.burst - 1
        if fired.count is not None:
            fired.count -= 1
        return fired

    def action_fails(self, command: str) -> bool:
        rate = self.failing_actions.get(command, 0.0)
        return rate > 0 and self._rng.random() < rate

    def is_stuck(self, server_name: str) -> bool:
        return self.stuck_initializing is not None and bool(
            re.search(self.stuck_initializing, server_name)
        )

    def dhcp_silence(self, server_name: str) -> float:
        """Seconds the server's first DHCP try goes unanswered in its private networks."""
        lost = self.dhcp_first_try_lost is not None and re.search(
            self.dhcp_first_try_lost, server_name
        )
        return self.dhcp_try_seconds if lost else 0.0

    def is_unavailable(self, server_type: str, location: str) -> bool:
        """Globs allowed on both sides: ("cx*", "fsn1")."""
        return any(
            fnmatch.fnmatchcase(server_type, t) and fnmatch.fnmatchcase(location, loc)
            for t, loc in self.unavailable
        )

    # -- (de)serialisation for the admin endpoint and the CLI ---------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "http": [f.to_json() for f in self.http],
            "failing_actions": dict(self.failing_actions),
            "stuck_initializing": self.stuck_initializing,
            "unavailable": [list(pair) for pair in sorted(self.unavailable)],
            "release_delay": self.release_delay,
            "dhcp_first_try_lost": self.dhcp_first_try_lost,
            "dhcp_try_seconds": self.dhcp_try_seconds,
            "chaos": self.chaos,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Faults:
        known = {
            "http",
            "failing_actions",
            "stuck_initializing",
            "unavailable",
            "availability",
            "release_delay",
            "dhcp_first_try_lost",
            "dhcp_try_seconds",
            "chaos",
            "seed",
        }
        unknown = set(data) - known
        if unknown:
            raise EmulatorInputError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        release_delay = data.get("release_delay")
        return cls(
            http=[HttpFault(**item) for item in data.get("http", [])],
            failing_actions={str(k): float(v) for k, v in data.get("failing_actions", {}).items()},
            stuck_initializing=data.get("stuck_initializing"),
            unavailable=parse_unavailable(data.get("unavailable", []))
            | availability_profile(data.get("availability")),
            release_delay=None if release_delay is None else float(release_delay),
            dhcp_first_try_lost=data.get("dhcp_first_try_lost"),
            dhcp_try_seconds=float(data.get("dhcp_try_seconds", 60.0)),
            chaos=bool(data.get("chaos", False)),
            seed=data.get("seed"),
        )


def parse_unavailable(items: list[Any]) -> set[tuple[str, str]]:
    """`[["cx*", "fsn1"], "cax11@nbg1"]`: pairs, or the CLI's TYPE@LOCATION form."""
    pairs = set()
    for item in items:
        if isinstance(item, str):
            server_type, sep, location = item.partition("@")
            if not sep or not server_type or not location:
                raise EmulatorInputError(f"{item!r} is not TYPE@LOCATION")
        else:
            server_type, location = item
        pairs.add((str(server_type), str(location)))
    return pairs


def parse_http_fault(text: str) -> HttpFault:
    """Parse the CLI form `PATH_REGEX:STATUS[:RATE[:DELAY]]`, e.g. `^/servers$:503:0.5`."""
    parts = text.rsplit(":", 3)
    # the path may itself contain ':'; take numeric fields from the right
    numeric: list[str] = []
    while parts and len(numeric) < 3 and _is_number(parts[-1]):
        numeric.insert(0, parts.pop())
    if not parts or not numeric:
        raise EmulatorInputError(f"fault '{text}' is not PATH:STATUS[:RATE[:DELAY]]")
    path = ":".join(parts)
    status = int(numeric[0])
    rate = float(numeric[1]) if len(numeric) > 1 else 1.0
    delay = float(numeric[2]) if len(numeric) > 2 else 0.0
    return HttpFault(path=path, status=status, rate=rate, delay=delay)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# Named availability profiles: what "unorderable" looked like at a time, with its sources.
# 2026-eu-shortage: CX23-CX53 and CAX11-41 "not available" in EU locations while CPX was
# orderable (robhunter/agentdeals PR #1286, 2026-09-03; jikig-ai/soleur#6482, 2026-07-15:
# cx33 in no EU datacenter; autobase PR #1624 dropped CX/CAX defaults), hetzner-reality.md.
AVAILABILITY_PROFILES: dict[str, frozenset[tuple[str, str]]] = {
    "2026-eu-shortage": frozenset(
        (family, location) for family in ("cx*", "cax*") for location in ("fsn1", "nbg1", "hel1")
    ),
}


def availability_profile(name: str | None) -> set[tuple[str, str]]:
    if name is None:
        return set()
    if name not in AVAILABILITY_PROFILES:
        raise EmulatorInputError(
            f"unknown availability profile {name!r} (known: {', '.join(AVAILABILITY_PROFILES)})"
        )
    return set(AVAILABILITY_PROFILES[name])


def chaos_faults() -> list[HttpFault]:
    """`--chaos`: what a rough day of the real API looks like, on every path at low rates —
    5xx of each kind (hcloud-python retries only some: hetzner-reality.md), 429s in short
    bursts, gateway timeouts after a wait, and slow answers. Reproducible with `seed` for the
    same sequence of requests."""
    return [
        HttpFault(status=500, rate=0.01),
        HttpFault(status=502, rate=0.01),
        HttpFault(status=503, rate=0.02),
        HttpFault(status=504, rate=0.01, delay=2.0),
        HttpFault(status=429, rate=0.01, burst=3),
        HttpFault(status=SLOW, rate=0.05, delay=1.5),
    ]
