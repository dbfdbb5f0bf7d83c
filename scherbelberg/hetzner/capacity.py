"""Which server types can be had, and where: the choice of a cluster's types and location.

Why: in 2026 Hetzner has for weeks at a time been unable to sell whole families (CX, CAX) in
its EU locations while CPX stayed orderable (hetzner-reality.md, "Capacity"). A tool whose
defaults are fixed names fails for everyone then. So a role's server type is a *wish*: names
in order of preference, or (the default) a requirement — cores, memory, architecture — met by
the cheapest type that is orderable. If the location has nothing that fits, the other
locations of its network zone are tried (a private network spans the zone).

Availability is read where Hetzner publishes it: a datacenter's `server_types.available`
(`GET /datacenters`; a type that is `supported` but not `available` cannot be ordered now,
`POST /servers` answers 412 `resource_unavailable`). Where an API has no datacenters any more,
a type counts as orderable in the locations its `locations` list names (and that do not say
`available: false`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..config import Sourced
from ..errors import ConfigError, HetznerError
from .infra import list_all
from .lookups import ServerTypeInfo, server_type_info
from .session import HetznerSession


@dataclass(frozen=True)
class Requirement:
    """What a role needs when no type is named: the cheapest orderable type that has it."""

    cores: int
    memory_gb: float
    architecture: str = "x86"

    def met_by(self, data: dict[str, Any]) -> bool:
        return (
            int(data["cores"]) >= self.cores
            and float(data["memory"]) >= self.memory_gb
            and data["architecture"] == self.architecture
        )

    def __str__(self) -> str:
        return f"{self.cores}+ cores, {self.memory_gb:g}+ GB, {self.architecture}"


@dataclass(frozen=True)
class Wish:
    """A role's server type: `names` in order of preference, or `requirement` if none."""

    role: str  # "scheduler" | "worker"
    names: tuple[str, ...]
    requirement: Requirement
    source: str = ""  # where the names (or the requirement) came from

    @property
    def what(self) -> str:
        return f"{self.role} server type"

    def describe(self, what: str | None = None) -> str:
        """ "worker server type 'cx33' (argument worker_server_type=)", or for a requirement
        "scheduler server type with 2+ cores, 4+ GB, x86 (scherbelberg.scheduler-requirement)"."""
        source = f" ({self.source})" if self.source else ""
        if not self.names:
            return f"{what or self.what} with {self.requirement}{source}"
        quoted = " or ".join(repr(str(n)) for n in self.names)
        return f"{what or self.what} {quoted}{source}"


@dataclass
class Catalog:
    """Server types, locations and what is orderable where, read once per cluster."""

    types: dict[str, dict[str, Any]]  # by name
    zones: dict[str, str]  # location -> network zone
    orderable: set[tuple[str, str]] = field(default_factory=set)  # (type, location)

    def offered(self, name: str, location: str) -> bool:
        return (name, location) in self.orderable

    def candidates(self, wish: Wish, location: str) -> list[str]:
        """Names that would do for `wish` in `location`, best first (orderable or not)."""
        if wish.names:
            return [str(n) for n in wish.names]
        fitting = [
            data
            for data in self.types.values()
            if wish.requirement.met_by(data) and not _deprecated(data, location)
        ]
        return [d["name"] for d in sorted(fitting, key=lambda d: (_price(d, location), d["cores"]))]

    def pick(
        self, wish: Wish, location: str, refused: Iterable[tuple[str, str]] = ()
    ) -> str | None:
        """The best type for `wish` that is orderable in `location` (and not refused)."""
        skip = set(refused)
        for name in self.candidates(wish, location):
            if self.offered(name, location) and (name, location) not in skip:
                return name
        return None

    def neighbours(self, location: str) -> list[str]:
        """`location` first, then the other locations of its network zone."""
        zone = self.zones.get(location)
        return [location, *sorted(n for n, z in self.zones.items() if z == zone and n != location)]

    def info(self, name: str, location: str) -> ServerTypeInfo:
        return server_type_info(self.types[name], location)

    def orderable_list(self, location: str, architecture: str | None = None) -> list[str]:
        """What can be had in `location` now, cheapest first (for error messages)."""
        names = [
            n
            for (n, loc) in self.orderable
            if loc == location
            and not _deprecated(self.types[n], location)
            and (architecture is None or self.types[n]["architecture"] == architecture)
        ]
        return sorted(names, key=lambda n: (_price(self.types[n], location), n))


@dataclass(frozen=True)
class Choice:
    location: str
    types: dict[str, str]  # role -> type name


async def load(session: HetznerSession) -> Catalog:
    """Types, locations and availability (three listings; every request counts)."""
    types = {t["name"]: t for t in await list_all(session, "server_types")}
    zones = {loc["name"]: loc["network_zone"] for loc in await list_all(session, "locations")}
    catalog = Catalog(types, zones)
    try:
        datacenters = await list_all(session, "datacenters")
    except HetznerError as exc:
        if exc.code not in ("not_found", 404, 410, "gone"):
            raise
        datacenters = []  # an API without datacenters: the types' own location lists
    by_id = {int(t["id"]): name for name, t in types.items()}
    if datacenters:
        for dc in datacenters:
            location = dc["location"]["name"]
            for type_id in (dc.get("server_types") or {}).get("available", []):
                if int(type_id) in by_id:
                    catalog.orderable.add((by_id[int(type_id)], location))
    else:
        for name, data in types.items():
            for loc in data.get("locations", []):
                if loc.get("available", True):
                    catalog.orderable.add((name, loc["name"]))
    return catalog


def choose(catalog: Catalog, wishes: list[Wish], location: Sourced | str) -> Choice:
    """One location of the zone (the asked one first) where every role gets a type.

    Named types that do not exist are an error at once; if no location of the zone has a
    fitting, orderable type for every role, one line says what was asked and what can be had.
    """
    for wish in wishes:
        for name in wish.names:
            if name not in catalog.types:
                whats = f" for the {wish.what}" if wish.what else ""
                source = f" ({wish.source})" if wish.source else ""
                raise ConfigError(
                    f"unknown server type {str(name)!r}{whats}{source}; "
                    "see `scherbelberg catalog` for the current types"
                )
    for place in catalog.neighbours(str(location)):
        picks = {w.role: catalog.pick(w, place) for w in wishes}
        if all(picks.values()):
            return Choice(place, {role: str(name) for role, name in picks.items()})
    raise ConfigError(_nothing_fits(catalog, wishes, location))


def _nothing_fits(catalog: Catalog, wishes: list[Wish], location: Sourced | str) -> str:
    places = catalog.neighbours(str(location))
    where = f"location {str(location)!r}"
    if isinstance(location, Sourced) and location.source:
        where += f" ({location.source})"
    if len(places) > 1:
        where += f" or its network zone ({', '.join(places[1:])})"
    failing = [w for w in wishes if not catalog.pick(w, str(location))]
    wish = failing[0] if failing else wishes[0]
    arch = None if wish.names else wish.requirement.architecture
    can = catalog.orderable_list(str(location), arch)
    if not can:
        for place in places[1:]:
            can = [f"{n} ({place})" for n in catalog.orderable_list(place, arch)]
            if can:
                break
    same = len(failing) > 1 and all(w.names == wish.names for w in failing)
    roles = " and ".join(w.role for w in failing) + " server type" if same else None
    what = wish.describe(roles)
    return (
        f"{what} is not available in {where}; types offered there: {', '.join(can[:12]) or 'none'}"
    )


def _deprecated(data: dict[str, Any], location: str) -> bool:
    if data.get("deprecation") or data.get("deprecated"):
        return True
    entry = next((e for e in data.get("locations", []) if e.get("name") == location), None)
    return bool(entry and entry.get("deprecation"))


def _price(data: dict[str, Any], location: str) -> float:
    price = next((p for p in data.get("prices", []) if p["location"] == location), None)
    return float(price["price_hourly"]["gross"]) if price else float("inf")
