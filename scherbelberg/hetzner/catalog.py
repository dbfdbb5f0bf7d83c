"""Check what the user asked for against the API before anything is created."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
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
        raise ConfigError(f"unknown location {name!r} (known: {names})")
    found = body["locations"][0]
    return LocationInfo(name=found["name"], network_zone=found["network_zone"])


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
        if name not in by_name:
            raise ConfigError(
                f"unknown server type {name!r} (see `scherbelberg catalog` for the current types)"
            )
        result[name] = _server_type(by_name[name], location_name)
    return result


async def server_type(session: HetznerSession, name: str, location_name: str) -> ServerTypeInfo:
    return (await server_types(session, [name], location_name))[name]


def _server_type(data: dict[str, Any], location_name: str) -> ServerTypeInfo:
    name = data["name"]
    in_location = next(
        (loc for loc in data.get("locations", []) if loc["name"] == location_name), None
    )
    if in_location is None or not in_location.get("available", True):
        raise ConfigError(f"server type {name!r} is not available in location {location_name!r}")
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
    if text.isdigit():
        body = await session.request(f"looking up image {text}", "GET", f"/images/{text}")
        data = body["image"]
        if data["architecture"] != architecture:
            raise ConfigError(
                f"image {text} is for {data['architecture']}, the server type is {architecture}"
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
        raise ConfigError(f"unknown image {text!r} for architecture {architecture}")
    data = body["images"][0]
    return ImageInfo(int(data["id"]), data["name"], architecture)
