"""/server_types, /locations, /datacenters, /pricing: the read-only catalog."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from ..model import static_catalog
from ..model.errors import not_found
from .common import WORLD, filter_by, listed, ok, path_id

routes = web.RouteTableDef()


def _one(kind: str, found: Any, ident: int) -> dict[str, Any]:
    if found is None:
        raise not_found(kind, ident)
    data: dict[str, Any] = found.to_json()
    return data


def _listed(
    request: web.Request,
    key: str,
    items: Iterable[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> web.Response:
    """A catalog list, filtered by the query (catalog entries carry no labels)."""
    return listed(request, key, filter_by(items, request, labels=lambda _: {}), extra=extra)


@routes.get("/server_types")
async def list_server_types(request: web.Request) -> web.Response:
    return _listed(request, "server_types", (st.to_json() for st in static_catalog.SERVER_TYPES))


@routes.get("/server_types/{id}")
async def get_server_type(request: web.Request) -> web.Response:
    ident = path_id(request, kind="server_type")
    return ok({"server_type": _one("server_type", static_catalog.find_server_type(ident), ident)})


@routes.get("/locations")
async def list_locations(request: web.Request) -> web.Response:
    return _listed(request, "locations", (loc.to_json() for loc in static_catalog.LOCATIONS))


@routes.get("/locations/{id}")
async def get_location(request: web.Request) -> web.Response:
    ident = path_id(request, kind="location")
    return ok({"location": _one("location", static_catalog.find_location(ident), ident)})


@routes.get("/datacenters")
async def list_datacenters(request: web.Request) -> web.Response:
    shown = (_with_faults(request, dc.to_json()) for dc in static_catalog.DATACENTERS)
    extra = {"recommendation": static_catalog.RECOMMENDED_DATACENTER_ID}
    return _listed(request, "datacenters", shown, extra)


@routes.get("/datacenters/{id}")
async def get_datacenter(request: web.Request) -> web.Response:
    ident = path_id(request, kind="datacenter")
    found = _one("datacenter", static_catalog.find_datacenter(ident), ident)
    return ok({"datacenter": _with_faults(request, found)})


def _with_faults(request: web.Request, data: dict[str, Any]) -> dict[str, Any]:
    """Where Hetzner shows a shortage: the type drops out of the datacenter's `available`
    (and `available_for_migration`) list and stays in `supported` (hetzner-reality.md)."""
    faults = request.app[WORLD].faults
    location = data["location"]["name"]
    names = {st.id: st.name for st in static_catalog.SERVER_TYPES}
    types = dict(data["server_types"])
    for key in ("available", "available_for_migration"):
        types[key] = [i for i in types[key] if not faults.is_unavailable(names[i], location)]
    return {**data, "server_types": types}


@routes.get("/pricing")
async def get_pricing(request: web.Request) -> web.Response:
    return ok(static_catalog.pricing())
