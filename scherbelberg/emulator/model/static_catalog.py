"""The static part of the local Hetzner: locations, datacenters, server types, images, prices.

Everything here is immutable data plus functions rendering the exact JSON objects the Hetzner
Cloud API returns for it (`to_json()` on each record, `pricing()` for `GET /pricing`). Nothing here
knows about HTTP. Every `to_json()` returns a fresh dict, so callers may mutate the result.

The real IDs of most catalog entries are not published; the ones used here are stable and
plausible, which is all the clients need. System image IDs are large (like Hetzner's) so they
never collide with IDs the emulator hands out to snapshots.

Prices are plausible 2026 euro prices, not Hetzner's current list: net monthly prices per
location group, hourly prices derived from them, gross = net x 1.19 (German VAT).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

__all__ = [
    "DATACENTERS",
    "DEFAULT_IMAGE_NAME",
    "DEFAULT_LOCATION_NAME",
    "LOCATIONS",
    "MAX_SYSTEM_IMAGE_ID",
    "NETWORK_ZONES",
    "RECOMMENDED_DATACENTER_ID",
    "SERVER_TYPES",
    "SYSTEM_IMAGES",
    "VAT_RATE",
    "Architecture",
    "Datacenter",
    "Deprecation",
    "Location",
    "ServerType",
    "ServerTypePrice",
    "SystemImage",
    "datacenter_for_location",
    "find_datacenter",
    "find_location",
    "find_server_type",
    "find_system_image",
    "network_zone_of",
    "pricing",
]

Architecture = Literal["x86", "arm"]

VAT_RATE = Decimal("0.19")
CURRENCY = "EUR"
# 20 TiB / 1 TiB in bytes, as Hetzner counts "20 TB" of included traffic
_TB = 1024**4

# The image a caller gets when it does not care (scherbelberg's default OS).
DEFAULT_IMAGE_NAME = "debian-12"
# Where servers land when POST /servers names neither a location nor a datacenter.
DEFAULT_LOCATION_NAME = "fsn1"


# --------------------------------------------------------------------------- money


def _money(net: Decimal, places: int) -> dict[str, str]:
    """`{"net", "gross"}` as decimal strings with a fixed number of places."""
    quantum = Decimal(1).scaleb(-places)
    gross = net * (1 + VAT_RATE)
    return {
        "net": str(net.quantize(quantum, rounding=ROUND_HALF_UP)),
        "gross": str(gross.quantize(quantum, rounding=ROUND_HALF_UP)),
    }


def _hourly_from_monthly(monthly: Decimal) -> Decimal:
    """Hetzner bills by the hour up to a monthly cap; hourly = monthly / ~581 h, 4 places."""
    return (monthly / Decimal(581)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _monthly(net: Decimal) -> dict[str, str]:
    return _money(net, 4)


def _hourly(net: Decimal) -> dict[str, str]:
    return _money(net, 10)


# --------------------------------------------------------------------------- locations


@dataclass(frozen=True)
class Location:
    id: int
    name: str
    description: str
    country: str
    city: str
    latitude: float
    longitude: float
    network_zone: str
    # price group: "eu", "us" or "sg"; decides prices and included traffic
    region: Literal["eu", "us", "sg"]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "country": self.country,
            "city": self.city,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "network_zone": self.network_zone,
        }


LOCATIONS: tuple[Location, ...] = (
    Location(
        1, "fsn1", "Falkenstein DC Park 1", "DE", "Falkenstein", 50.47612, 12.370071,
        "eu-central", "eu",
    ),
    Location(
        2, "nbg1", "Nuremberg DC Park 1", "DE", "Nuremberg", 49.452102, 11.076665,
        "eu-central", "eu",
    ),
    Location(
        3, "hel1", "Helsinki DC Park 1", "FI", "Helsinki", 60.169855, 24.938379,
        "eu-central", "eu",
    ),
    Location(
        4, "ash", "Ashburn, VA", "US", "Ashburn, VA", 39.045821, -77.487073,
        "us-east", "us",
    ),
    Location(
        5, "hil", "Hillsboro, OR", "US", "Hillsboro, OR", 45.54222, -122.95128,
        "us-west", "us",
    ),
    Location(
        6, "sin", "Singapore", "SG", "Singapore", 1.283333, 103.833333,
        "ap-southeast", "sg",
    ),
)  # fmt: skip

# network zone -> location names
NETWORK_ZONES: dict[str, tuple[str, ...]] = {
    zone: tuple(loc.name for loc in LOCATIONS if loc.network_zone == zone)
    for zone in dict.fromkeys(loc.network_zone for loc in LOCATIONS)
}

_EU = ("fsn1", "nbg1", "hel1")
_ALL = tuple(loc.name for loc in LOCATIONS)


# --------------------------------------------------------------------------- server types


@dataclass(frozen=True)
class Deprecation:
    announced: str  # ISO 8601
    unavailable_after: str  # ISO 8601

    def to_json(self) -> dict[str, str]:
        return {"announced": self.announced, "unavailable_after": self.unavailable_after}


@dataclass(frozen=True)
class ServerTypePrice:
    location: str
    monthly_net: Decimal
    hourly_net: Decimal
    included_traffic: int  # bytes
    per_tb_traffic_net: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "price_hourly": _hourly(self.hourly_net),
            "price_monthly": _monthly(self.monthly_net),
            "included_traffic": self.included_traffic,
            "price_per_tb_traffic": _monthly(self.per_tb_traffic_net),
        }


@dataclass(frozen=True)
class ServerType:
    id: int
    name: str
    description: str
    category: str
    cores: int
    memory: float  # GB
    disk: int  # GB
    storage_type: Literal["local", "network"]
    cpu_type: Literal["shared", "dedicated"]
    architecture: Architecture
    deprecation: Deprecation | None
    # names of the locations offering this type, in catalog order
    location_names: tuple[str, ...]
    prices: tuple[ServerTypePrice, ...]

    @property
    def deprecated(self) -> bool:
        return self.deprecation is not None

    def offered_in(self, location: str) -> bool:
        """Whether the type exists at `location` (a location name) at all."""
        return location in self.location_names

    def available_in(self, location: str) -> bool:
        """Whether servers of this type can be created at `location` now.

        Deprecated types stay orderable until `unavailable_after` (clients in the wild still
        create cx22), so availability equals being offered.
        """
        return self.offered_in(location)

    def recommended_in(self, location: str) -> bool:
        return self.available_in(location) and not self.deprecated

    def price_in(self, location: str) -> ServerTypePrice | None:
        for price in self.prices:
            if price.location == location:
                return price
        return None

    def locations_json(self) -> list[dict[str, Any]]:
        result = []
        for loc in LOCATIONS:
            if loc.name not in self.location_names:
                continue
            result.append(
                {
                    "id": loc.id,
                    "name": loc.name,
                    "deprecation": self.deprecation.to_json() if self.deprecation else None,
                    "available": self.available_in(loc.name),
                    "recommended": self.recommended_in(loc.name),
                }
            )
        return result

    def prices_json(self) -> list[dict[str, Any]]:
        return [price.to_json() for price in self.prices]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "cores": self.cores,
            "memory": self.memory,
            "disk": self.disk,
            "prices": self.prices_json(),
            "storage_type": self.storage_type,
            "cpu_type": self.cpu_type,
            "architecture": self.architecture,
            "deprecated": self.deprecated,
            "deprecation": self.deprecation.to_json() if self.deprecation else None,
            "locations": self.locations_json(),
        }


_LEGACY = Deprecation(
    announced="2025-10-16T06:00:00+00:00",
    unavailable_after="2026-12-31T23:59:59+00:00",
)

# location price group -> (price multiplier, included traffic, net price per extra TB)
_REGION_PRICING: dict[str, tuple[Decimal, int, Decimal]] = {
    "eu": (Decimal("1.00"), 20 * _TB, Decimal("1.00")),
    "us": (Decimal("1.20"), 1 * _TB, Decimal("1.00")),
    "sg": (Decimal("1.40"), 1 * _TB, Decimal("7.40")),
}


def _prices(eu_monthly: str, location_names: tuple[str, ...]) -> tuple[ServerTypePrice, ...]:
    base = Decimal(eu_monthly)
    prices = []
    for loc in LOCATIONS:
        if loc.name not in location_names:
            continue
        factor, traffic, per_tb = _REGION_PRICING[loc.region]
        monthly = (base * factor).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        prices.append(
            ServerTypePrice(
                location=loc.name,
                monthly_net=monthly,
                hourly_net=_hourly_from_monthly(monthly),
                included_traffic=traffic,
                per_tb_traffic_net=per_tb,
            )
        )
    return tuple(prices)


def _st(
    id: int,
    name: str,
    cores: int,
    memory: float,
    disk: int,
    eu_monthly: str,
    *,
    category: str,
    locations: tuple[str, ...],
    cpu_type: Literal["shared", "dedicated"] = "shared",
    architecture: Architecture = "x86",
    deprecation: Deprecation | None = None,
) -> ServerType:
    return ServerType(
        id=id,
        name=name,
        description=name.upper() + (" Dedicated CPU" if cpu_type == "dedicated" else ""),
        category=category,
        cores=cores,
        memory=float(memory),
        disk=disk,
        storage_type="local",
        cpu_type=cpu_type,
        architecture=architecture,
        deprecation=deprecation,
        location_names=locations,
        prices=_prices(eu_monthly, locations),
    )


_CO = "cost_optimized"
_RP = "regular_purpose"
_GP = "general_purpose"

SERVER_TYPES: tuple[ServerType, ...] = (
    # legacy AMD shared (deprecated)
    _st(22, "cpx11", 2, 2, 40, "4.99", category=_RP, locations=_ALL, deprecation=_LEGACY),
    _st(23, "cpx21", 3, 4, 80, "8.49", category=_RP, locations=_ALL, deprecation=_LEGACY),
    _st(24, "cpx31", 4, 8, 160, "15.49", category=_RP, locations=_ALL, deprecation=_LEGACY),
    _st(25, "cpx41", 8, 16, 240, "28.49", category=_RP, locations=_ALL, deprecation=_LEGACY),
    _st(26, "cpx51", 16, 32, 360, "59.49", category=_RP, locations=_ALL, deprecation=_LEGACY),
    # Ampere ARM, EU only
    _st(45, "cax11", 2, 4, 40, "3.99", category=_CO, locations=_EU, architecture="arm"),
    _st(93, "cax21", 4, 8, 80, "6.99", category=_CO, locations=_EU, architecture="arm"),
    _st(94, "cax31", 8, 16, 160, "13.49", category=_CO, locations=_EU, architecture="arm"),
    _st(95, "cax41", 16, 32, 320, "26.49", category=_CO, locations=_EU, architecture="arm"),
    # dedicated vCPU
    _st(96, "ccx13", 2, 8, 80, "13.99", category=_GP, locations=_ALL, cpu_type="dedicated"),
    _st(97, "ccx23", 4, 16, 160, "27.49", category=_GP, locations=_ALL, cpu_type="dedicated"),
    _st(98, "ccx33", 8, 32, 240, "54.49", category=_GP, locations=_ALL, cpu_type="dedicated"),
    _st(99, "ccx43", 16, 64, 360, "108.49", category=_GP, locations=_ALL, cpu_type="dedicated"),
    _st(100, "ccx53", 32, 128, 600, "216.49", category=_GP, locations=_ALL, cpu_type="dedicated"),
    _st(101, "ccx63", 48, 192, 960, "324.49", category=_GP, locations=_ALL, cpu_type="dedicated"),
    # legacy Intel/AMD cost-optimized, EU only (deprecated)
    _st(104, "cx22", 2, 4, 40, "3.79", category=_CO, locations=_EU, deprecation=_LEGACY),
    _st(105, "cx32", 4, 8, 80, "6.80", category=_CO, locations=_EU, deprecation=_LEGACY),
    _st(106, "cx42", 8, 16, 160, "16.40", category=_CO, locations=_EU, deprecation=_LEGACY),
    _st(107, "cx52", 16, 32, 320, "32.40", category=_CO, locations=_EU, deprecation=_LEGACY),
    # current AMD shared
    _st(108, "cpx12", 1, 2, 40, "4.49", category=_RP, locations=_ALL),
    _st(109, "cpx22", 2, 4, 80, "7.49", category=_RP, locations=_ALL),
    _st(110, "cpx32", 4, 8, 160, "13.49", category=_RP, locations=_ALL),
    _st(111, "cpx42", 8, 16, 320, "24.99", category=_RP, locations=_ALL),
    _st(112, "cpx52", 12, 24, 480, "36.49", category=_RP, locations=_ALL),
    _st(113, "cpx62", 16, 32, 640, "49.99", category=_RP, locations=_ALL),
    # current cost-optimized x86, EU only
    _st(114, "cx23", 2, 4, 40, "3.49", category=_CO, locations=_EU),
    _st(115, "cx33", 4, 8, 80, "5.49", category=_CO, locations=_EU),
    _st(116, "cx43", 8, 16, 160, "9.49", category=_CO, locations=_EU),
    _st(117, "cx53", 16, 32, 320, "17.49", category=_CO, locations=_EU),
)


# --------------------------------------------------------------------------- datacenters


@dataclass(frozen=True)
class Datacenter:
    id: int
    name: str
    description: str
    location_name: str

    @property
    def location(self) -> Location:
        loc = find_location(self.location_name)
        assert loc is not None
        return loc

    def server_types_json(self) -> dict[str, list[int]]:
        supported = [st.id for st in SERVER_TYPES if st.offered_in(self.location_name)]
        available = [st.id for st in SERVER_TYPES if st.available_in(self.location_name)]
        return {
            "supported": supported,
            "available": available,
            "available_for_migration": list(available),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "location": self.location.to_json(),
            "server_types": self.server_types_json(),
        }


DATACENTERS: tuple[Datacenter, ...] = (
    Datacenter(2, "nbg1-dc3", "Nuremberg 1 virtual DC 3", "nbg1"),
    Datacenter(3, "hel1-dc2", "Helsinki 1 virtual DC 2", "hel1"),
    Datacenter(4, "fsn1-dc14", "Falkenstein 1 virtual DC 14", "fsn1"),
    Datacenter(5, "ash-dc1", "Ashburn virtual DC 1", "ash"),
    Datacenter(6, "hil-dc1", "Hillsboro virtual DC 1", "hil"),
    Datacenter(7, "sin-dc1", "Singapore virtual DC 1", "sin"),
)

# `recommendation` in GET /datacenters
RECOMMENDED_DATACENTER_ID = 4


# --------------------------------------------------------------------------- system images


@dataclass(frozen=True)
class SystemImage:
    id: int
    name: str
    description: str
    os_flavor: str
    os_version: str
    architecture: Architecture
    created: str  # ISO 8601
    disk_size: float = 5.0  # GB

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "system",
            "status": "available",
            "name": self.name,
            "description": self.description,
            "image_size": None,
            "disk_size": self.disk_size,
            "created": self.created,
            "created_from": None,
            "bound_to": None,
            "os_flavor": self.os_flavor,
            "os_version": self.os_version,
            "architecture": self.architecture,
            "rapid_deploy": True,
            "protection": {"delete": False},
            "deprecated": None,
            "deprecation": None,
            "deleted": None,
            "labels": {},
        }


def _images(
    name: str, description: str, flavor: str, version: str, created: str, x86_id: int, arm_id: int
) -> tuple[SystemImage, SystemImage]:
    return (
        SystemImage(x86_id, name, description, flavor, version, "x86", created),
        SystemImage(arm_id, name, description, flavor, version, "arm", created),
    )


# Ordered by id, and every x86 image has a lower id than its arm twin, so both catalog order
# and the API's default id order list x86 first: hcloud-cli 1.30 takes the first `?name=` match.
SYSTEM_IMAGES: tuple[SystemImage, ...] = (
    *_images("ubuntu-22.04", "Ubuntu 22.04", "ubuntu", "22.04",
             "2022-04-21T13:32:38+00:00", 67794396, 103908070),
    *_images("debian-12", "Debian 12", "debian", "12",
             "2023-06-13T06:00:02+00:00", 114690387, 114690389),
    *_images("rocky-9", "Rocky Linux 9", "rocky", "9",
             "2023-07-14T06:00:00+00:00", 114691000, 114691002),
    *_images("alma-9", "AlmaLinux 9", "alma", "9",
             "2023-07-14T06:00:00+00:00", 114691010, 114691012),
    *_images("ubuntu-24.04", "Ubuntu 24.04", "ubuntu", "24.04",
             "2024-04-25T13:32:38+00:00", 161547269, 161547270),
    *_images("debian-13", "Debian 13", "debian", "13",
             "2025-08-11T06:00:00+00:00", 310557660, 310557661),
)  # fmt: skip

# Every ID at or below this is a system image; the state model must hand out larger ones.
MAX_SYSTEM_IMAGE_ID = max(img.id for img in SYSTEM_IMAGES)


# --------------------------------------------------------------------------- lookups


def _as_id(id_or_name: object) -> int | None:
    """The ID meant by an int or a digit string; None for names and anything else."""
    if isinstance(id_or_name, bool):
        return None
    if isinstance(id_or_name, int):
        return id_or_name
    if isinstance(id_or_name, str) and id_or_name.isascii() and id_or_name.isdigit():
        return int(id_or_name)
    return None


def find_location(id_or_name: int | str | None) -> Location | None:
    """The location with this ID (int or digit string) or name, or None."""
    wanted = _as_id(id_or_name)
    for loc in LOCATIONS:
        if loc.name == id_or_name or loc.id == wanted:
            return loc
    return None


def find_datacenter(id_or_name: int | str | None) -> Datacenter | None:
    """The datacenter with this ID (int or digit string) or name, or None."""
    wanted = _as_id(id_or_name)
    for dc in DATACENTERS:
        if dc.name == id_or_name or dc.id == wanted:
            return dc
    return None


def find_server_type(id_or_name: int | str | None) -> ServerType | None:
    """The server type with this ID (int or digit string) or name, or None."""
    wanted = _as_id(id_or_name)
    for st in SERVER_TYPES:
        if st.name == id_or_name or st.id == wanted:
            return st
    return None


def find_system_image(
    id_or_name: int | str | None, architecture: str | None = None
) -> SystemImage | None:
    """The system image with this ID or name, or None.

    Names exist once per architecture: with `architecture` None a name gives the first (x86)
    image, as the Hetzner CLI does. An ID that belongs to another architecture than the one
    asked for gives None.
    """
    wanted = _as_id(id_or_name)
    for img in SYSTEM_IMAGES:
        if img.name != id_or_name and img.id != wanted:
            continue
        if architecture is None or img.architecture == architecture:
            return img
    return None


def network_zone_of(location: int | str | None) -> str | None:
    """The network zone (e.g. "eu-central") of a location given by ID or name, or None."""
    loc = find_location(location)
    return loc.network_zone if loc else None


def datacenter_for_location(location: int | str | None) -> Datacenter | None:
    """The (single) datacenter of a location given by ID or name, or None."""
    loc = find_location(location)
    if loc is None:
        return None
    for dc in DATACENTERS:
        if dc.location_name == loc.name:
            return dc
    return None


# --------------------------------------------------------------------------- GET /pricing


def _location_prices(monthly_net: str, *, hourly: bool) -> list[dict[str, Any]]:
    """Per-location prices of IPs (same in every location, as at Hetzner)."""
    result = []
    for loc in LOCATIONS:
        monthly = Decimal(monthly_net)
        entry: dict[str, Any] = {"location": loc.name}
        if hourly:
            entry["price_hourly"] = _hourly(_hourly_from_monthly(monthly))
        entry["price_monthly"] = _monthly(monthly)
        result.append(entry)
    return result


_LOAD_BALANCER_TYPES = ((1, "lb11", "5.39"), (2, "lb21", "16.40"), (3, "lb31", "32.90"))


def pricing() -> dict[str, Any]:
    """The body of `GET /pricing`: `{"pricing": {...}}`."""
    load_balancer_types = [
        {
            "id": lb_id,
            "name": name,
            "prices": [p.to_json() for p in _prices(eu_monthly, _ALL)],
        }
        for lb_id, name, eu_monthly in _LOAD_BALANCER_TYPES
    ]
    return {
        "pricing": {
            "currency": CURRENCY,
            "vat_rate": str((VAT_RATE * 100).quantize(Decimal("0.01"))),
            "image": {"price_per_gb_month": _monthly(Decimal("0.0110"))},
            "volume": {"price_per_gb_month": _monthly(Decimal("0.0440"))},
            "server_backup": {"percentage": "20.00"},
            "floating_ip": {"price_monthly": _monthly(Decimal("3.00"))},
            "floating_ips": [
                {"type": "ipv4", "prices": _location_prices("3.00", hourly=False)},
                {"type": "ipv6", "prices": _location_prices("3.00", hourly=False)},
            ],
            "primary_ips": [
                {"type": "ipv4", "prices": _location_prices("0.50", hourly=True)},
                {"type": "ipv6", "prices": _location_prices("0.00", hourly=True)},
            ],
            "server_types": [
                {"id": st.id, "name": st.name, "prices": st.prices_json()} for st in SERVER_TYPES
            ],
            "load_balancer_types": load_balancer_types,
        }
    }
