"""Check what the user asked for against the API before anything is created.

Names may be `config.Sourced` (what the cluster's settings pass): an error then says which
setting holds the value and where it came from (argument, dask config, default)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from ..config import Sourced
from ..errors import ConfigError
from .session import HetznerSession


@dataclass(frozen=True)
class ServerTypeInfo:
    name: str
    cores: int
    memory_gb: float
    disk_gb: int
    architecture: str  # x86 | arm
    deprecated: bool
    price_hourly: float | None  # gross EUR in the chosen location
    price_monthly: float | None


@dataclass(frozen=True)
class LocationInfo:
    name: str
    network_zone: str


@dataclass(frozen=True)
class ImageInfo:
    id: int
    name: str  # system image name, or the snapshot's description
    architecture: str


async def location(session: HetznerSession, name: str) -> LocationInfo:
    body = await session.request(
        f"looking up location {name!r}", "GET", "/locations", params={"name": name}
    )
    if not body.get("locations"):
        known = await session.request("listing locations", "GET", "/locations")
        names = ", ".join(loc["name"] for loc in known.get("locations", []))
        source = f"{name.source}; " if isinstance(name, Sourced) and name.source else ""
        raise ConfigError(f"unknown location {str(name)!r} ({source}known: {names})")
    found = body["locations"][0]
    # the name keeps its source: the server type checks in this location quote it
    return LocationInfo(
        name=Sourced(found["name"], "location", getattr(name, "source", "")),
        network_zone=found["network_zone"],
    )


async def server_types(
    session: HetznerSession, names: list[str], location_name: str
) -> dict[str, ServerTypeInfo]:
    """Several server types with one request (the whole list fits a page or two)."""
    listed: list[dict[str, Any]] = []
    page: int | None = 1
    while page is not None:
        body = await session.request(
            "looking up server types", "GET", "/server_types", params={"page": page, "per_page": 50}
        )
        listed += body.get("server_types", [])
        page = body.get("meta", {}).get("pagination", {}).get("next_page")
    by_name = {data["name"]: data for data in listed}
    result = {}
    for name in dict.fromkeys(names):
        whats, sources = _origin([n for n in names if n == name])  # scheduler and/or worker
        if name not in by_name:
            see = "see `scherbelberg catalog` for the current types"
            raise ConfigError(
                f"unknown server type {str(name)!r} for the {whats}{sources}; {see}"
                if whats
                else f"unknown server type {str(name)!r} ({see})"
            )
        if not _offered(by_name[name], location_name):
            offered = ", ".join(n for n, data in by_name.items() if _current(data, location_name))
            _, where = _origin([location_name])
            raise ConfigError(
                f"{whats or 'server type'} {str(name)!r}{sources} is not available in location "
                f"{str(location_name)!r}{where}; types offered there: {offered or 'none'}"
            )
        result[name] = server_type_info(by_name[name], location_name)
    return result


async def server_type(session: HetznerSession, name: str, location_name: str) -> ServerTypeInfo:
    return (await server_types(session, [name], location_name))[name]


def _offered(data: dict[str, Any], location_name: str) -> bool:
    in_location = next(
        (loc for loc in data.get("locations", []) if loc["name"] == location_name), None
    )
    return in_location is not None and bool(in_location.get("available", True))


def _current(data: dict[str, Any], location_name: str) -> bool:
    """Offered in the location and not deprecated: what an error may suggest instead."""
    deprecated = data.get("deprecation") or data.get("deprecated")
    return _offered(data, location_name) and not deprecated


def _origin(names: list[str]) -> tuple[str, str]:
    """What the names are and where they came from, as far as they are `Sourced`:
    ("scheduler and worker server type", " (argument server_type=)"), or ("", "")."""
    sourced = [n for n in names if isinstance(n, Sourced)]
    kinds = list(dict.fromkeys(n.what for n in sourced if n.what))
    suffix = " server type"
    if len(kinds) > 1 and all(k.endswith(suffix) for k in kinds):  # "scheduler and worker …"
        kinds = [" and ".join(k.removesuffix(suffix) for k in kinds) + suffix]
    whats = " and ".join(kinds)
    sources = "; ".join(dict.fromkeys(n.source for n in sourced if n.source))
    return whats, f" ({sources})" if sources else ""


def server_type_info(data: dict[str, Any], location_name: str) -> ServerTypeInfo:
    """A type as the cluster uses it, with its price in `location_name` (warns if deprecated)."""
    name = data["name"]
    deprecated = bool(data.get("deprecation") or data.get("deprecated"))
    if deprecated:
        until = (data.get("deprecation") or {}).get("unavailable_after", "soon")
        warnings.warn(
            f"server type {name!r} is deprecated by Hetzner (unavailable after {until}); "
            "pick a current type (see `scherbelberg catalog`)",
            FutureWarning,
            stacklevel=3,
        )
    price = next((p for p in data.get("prices", []) if p["location"] == location_name), None)
    return ServerTypeInfo(
        name=data["name"],
        cores=int(data["cores"]),
        memory_gb=float(data["memory"]),
        disk_gb=int(data["disk"]),
        architecture=data["architecture"],
        deprecated=deprecated,
        price_hourly=float(price["price_hourly"]["gross"]) if price else None,
        price_monthly=float(price["price_monthly"]["gross"]) if price else None,
    )


async def image(session: HetznerSession, name: str | int, architecture: str) -> ImageInfo:
    """A system image by name for `architecture` (Hetzner has one per architecture), or a
    snapshot by id."""
    text = str(name)
    source = f" ({name.source})" if isinstance(name, Sourced) and name.source else ""
    if text.isdigit():
        body = await session.request(f"looking up image {text}", "GET", f"/images/{text}")
        data = body["image"]
        if data["architecture"] != architecture:
            raise ConfigError(
                f"image {text}{source} is for {data['architecture']}, "
                f"the server type is {architecture}"
            )
        return ImageInfo(
            int(data["id"]), data.get("name") or data.get("description") or text, architecture
        )
    body = await session.request(
        f"looking up image {text!r}",
        "GET",
        "/images",
        params={"name": text, "architecture": architecture, "include_deprecated": "true"},
    )
    if not body.get("images"):
        raise ConfigError(f"unknown image {text!r}{source} for architecture {architecture}")
    data = body["images"][0]
    return ImageInfo(int(data["id"]), data["name"], architecture)


async def images_for(
    session: HetznerSession, name: str | int, types: dict[str, ServerTypeInfo]
) -> dict[str, ImageInfo]:
    """The image for each role's server type: one look-up per architecture (a start and a dry
    run check the same, so an x86 snapshot with an arm worker fails both)."""
    by_architecture: dict[str, ImageInfo] = {}
    found = {}
    for role, server_type in types.items():
        arch = server_type.architecture
        if arch not in by_architecture:
            by_architecture[arch] = await image(session, name, arch)
        found[role] = by_architecture[arch]
    return found
