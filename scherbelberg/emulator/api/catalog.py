"""/server_types, /locations, /datacenters, /pricing: the read-only catalog."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..model import catalog
from ..model.errors import not_found
from .common import filter_by, listed, ok, path_id

routes = web.RouteTableDef()


def _one(kind: str, found: Any, ident: int) -> dict[str, Any]:
    if found is None:
        raise not_found(kind, ident)
    data: dict[str, Any] = found.to_json()
    return data


@routes.get("/server_types")
async def list_server_types(request: web.Request) -> web.Response:
    items = filter_by((st.to_json() for st in catalog.SERVER_TYPES), request, labels=lambda _: {})
    return listed(request, "server_types", items)


@routes.get("/server_types/{id}")
async def get_server_type(request: web.Request) -> web.Response:
    ident = path_id(request, kind="server_type")
    return ok({"server_type": _one("server_type", catalog.find_server_type(ident), ident)})


@routes.get("/locations")
async def list_locations(request: web.Request) -> web.Response:
    items = filter_by((loc.to_json() for loc in catalog.LOCATIONS), request, labels=lambda _: {})
    return listed(request, "locations", items)


@routes.get("/locations/{id}")
async def get_location(request: web.Request) -> web.Response:
    ident = path_id(request, kind="location")
    return ok({"location": _one("location", catalog.find_location(ident), ident)})


@routes.get("/datacenters")
async def list_datacenters(request: web.Request) -> web.Response:
    items = filter_by((dc.to_json() for dc in catalog.DATACENTERS), request, labels=lambda _: {})
    return listed(
        request, "datacenters", items, extra={"recommendation": catalog.RECOMMENDED_DATACENTER_ID}
    )


@routes.get("/datacenters/{id}")
async def get_datacenter(request: web.Request) -> web.Response:
    ident = path_id(request, kind="datacenter")
    return ok({"datacenter": _one("datacenter", catalog.find_datacenter(ident), ident)})


@routes.get("/pricing")
async def get_pricing(request: web.Request) -> web.Response:
    return ok(catalog.pricing())
