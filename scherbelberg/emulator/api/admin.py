"""/_emulator: the local Hetzner's own controls (not part of Hetzner's API).

Projects (tokens), faults, the request log, machine info and killing machines. Every call needs
the admin token the emulator printed at start. `scherbelberg.emulator.control.EmulatorControl`
is the Python side of these endpoints.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from scherbelberg.errors import EmulatorInputError

from ..faults import Faults, availability_profile, parse_unavailable
from ..model.errors import ApiError
from ..model.world import Limits
from .app_state import ADMIN_TOKEN, RATE_LIMITERS, REQUEST_LOG, bearer
from .common import WORLD, body_of

routes = web.RouteTableDef()
PREFIX = "/_emulator"


def _check_admin(request: web.Request) -> None:

    if bearer(request) != request.app[ADMIN_TOKEN]:
        raise web.HTTPUnauthorized(
            text='{"error": "admin token required"}', content_type="application/json"
        )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        return await body_of(request)
    except ApiError as exc:
        raise web.HTTPBadRequest(text=exc.message) from None


@routes.get(PREFIX + "/info")
async def info(request: web.Request) -> web.Response:
    _check_admin(request)
    world = request.app[WORLD]
    backend = world.backend
    return _json(
        {
            "backend": backend.name,
            "latency_profile": world.latency.as_dict(),
            "client_address": str(backend.client_address),
            "echo_url": backend.echo_url,
            "pip_index_url": backend.pip_index_url,
            "python_downloads_json_url": backend.python_downloads_json_url,
            "node_api_url": backend.api_url,  # the API as machines reach it
            "outside_netns": backend.outside_netns,
            "public_range": str(backend.public_range),
            # where machines keep their disks (nspawn): for tests that look at a disk as a
            # rescue system would
            "state_dir": str(root) if (root := getattr(backend, "root", None)) else None,
            "projects": len(world.projects),
        }
    )


@routes.post(PREFIX + "/projects")
async def create_project(request: web.Request) -> web.Response:
    _check_admin(request)
    body = await _body(request)
    world = request.app[WORLD]
    try:
        project = world.add_project(name=body.get("name"), token=body.get("token"))
        if "requests_per_hour" in body:
            project.requests_per_hour = int(body["requests_per_hour"])
        if "limits" in body:
            project.limits = Limits(**{**asdict(project.limits), **body["limits"]})
    except (TypeError, ValueError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return _json({"id": project.id, "name": project.name, "token": project.token}, 201)


@routes.get(PREFIX + "/requests")
async def requests(request: web.Request) -> web.Response:

    _check_admin(request)
    token = request.query.get("token")
    records = request.app[REQUEST_LOG].for_token(token)
    since = float(request.query.get("since", "0"))
    records = [r for r in records if r.time >= since]
    return _json({"count": len(records), "requests": [asdict(r) for r in records]})


@routes.get(PREFIX + "/faults")
async def get_faults(request: web.Request) -> web.Response:
    _check_admin(request)
    return _json(request.app[WORLD].faults.to_json())


@routes.put(PREFIX + "/faults")
async def set_faults(request: web.Request) -> web.Response:
    _check_admin(request)
    try:
        faults = Faults.from_json(await _body(request))
    except (TypeError, ValueError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    request.app[WORLD].faults = faults
    return _json(faults.to_json())


@routes.patch(PREFIX + "/faults")
async def update_faults(request: web.Request) -> web.Response:
    """Change only the given parts (e.g. `{"release_delay": 8}`), keep the rest."""
    _check_admin(request)
    world = request.app[WORLD]
    try:
        faults = Faults.from_json({**world.faults.to_json(), **await _body(request)})
    except (TypeError, ValueError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    world.faults = faults
    return _json(faults.to_json())


@routes.get(PREFIX + "/availability")
async def get_availability(request: web.Request) -> web.Response:
    _check_admin(request)
    return _json(_availability(request.app[WORLD].faults))


@routes.put(PREFIX + "/availability")
async def set_availability(request: web.Request) -> web.Response:
    """`{"unavailable": ["cx*@fsn1", ["cax11", "nbg1"]], "profile": "2026-eu-shortage"}`
    replaces what cannot be ordered (both optional; `{}` makes everything orderable again).
    The other faults stay as they are."""
    _check_admin(request)
    body = await _body(request)
    faults = request.app[WORLD].faults
    try:
        unknown = set(body) - {"unavailable", "profile"}
        if unknown:
            raise EmulatorInputError(f"unknown availability settings: {', '.join(sorted(unknown))}")
        pairs = parse_unavailable(list(body.get("unavailable") or []))
        faults.unavailable = pairs | availability_profile(body.get("profile"))
    except (TypeError, ValueError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return _json(_availability(faults))


def _availability(faults: Faults) -> dict[str, Any]:
    return {"unavailable": [list(pair) for pair in sorted(faults.unavailable)]}


@routes.put(PREFIX + "/projects/{token}/rate_limit")
async def rate_limit(request: web.Request) -> web.Response:
    """`{"frozen": true}` stops the refill clock, so a test can exhaust the allowance exactly."""
    from .ratelimit import RateLimiter

    _check_admin(request)
    project = request.app[WORLD].project_for(request.match_info["token"])
    if project is None:
        raise web.HTTPNotFound(text="no such project")
    body = await _body(request)
    limiter = request.app[RATE_LIMITERS].setdefault(
        project.id, RateLimiter(limit=project.requests_per_hour)
    )
    if "frozen" in body:
        limiter.freeze(bool(body["frozen"]))
    return _json({"remaining": limiter.remaining, "reset": limiter.reset_at})


def _server(request: web.Request) -> tuple[Any, Any]:
    world = request.app[WORLD]
    server_id = int(request.match_info["id"])
    for project in world.projects.values():
        if server_id in project.servers:
            return world, project.servers[server_id]
    raise web.HTTPNotFound(text="no such server")


@routes.get(PREFIX + "/servers/{id}")
async def server_info(request: web.Request) -> web.Response:
    """What Hetzner's API never shows: the user_data as stored, and whether a machine runs."""
    _check_admin(request)
    world, server = _server(request)
    return _json(
        {
            "id": server.id,
            "name": server.name,
            "status": server.status,
            "user_data": server.user_data,
            "machine_running": world.backend.is_running(server.id),
            "public_ipv4": str(server.public_ipv4) if server.public_ipv4 else None,
        }
    )


@routes.post(PREFIX + "/servers/{id}/kill")
async def kill_server(request: web.Request) -> web.Response:
    """Kill the server's machine as if its host died."""
    _check_admin(request)
    world, server = _server(request)
    await world.backend.kill(server.id)
    return _json({"id": server.id, "status": server.status})
