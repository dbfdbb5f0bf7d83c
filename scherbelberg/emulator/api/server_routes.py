"""/servers and its actions."""

from __future__ import annotations

from aiohttp import web

from ..model import firewalls, servers
from ..model.errors import ApiError, not_found
from . import render
from .common import body_of, filter_by, listed, ok, path_id, project_of, world_of

routes = web.RouteTableDef()


@routes.get("/servers")
async def list_servers(request: web.Request) -> web.Response:
    project = project_of(request)
    items = [render.server(project, s) for s in project.servers.values()]
    items = filter_by(items, request, status="status")
    return listed(request, "servers", items)


@routes.post("/servers")
async def create_server(request: web.Request) -> web.Response:
    world, project = world_of(request), project_of(request)
    result = servers.create(world, project, await body_of(request))
    return ok(
        {
            "server": render.server(project, result["server"]),
            "action": render.action(result["action"]),
            "next_actions": [render.action(a) for a in result["next_actions"]],
            "root_password": result["root_password"],
        },
        status=201,
    )


@routes.get("/servers/{id}")
async def get_server(request: web.Request) -> web.Response:
    project = project_of(request)
    server = servers.get(project, path_id(request, kind="server"))
    return ok({"server": render.server(project, server)})


@routes.put("/servers/{id}")
async def update_server(request: web.Request) -> web.Response:
    world, project = world_of(request), project_of(request)
    server = servers.update(project, path_id(request, kind="server"), await body_of(request))
    # labels may change which label-selected firewalls apply
    world.runner.spawn(firewalls.enforce(world, project, [server]))
    return ok({"server": render.server(project, server)})


@routes.delete("/servers/{id}")
async def delete_server(request: web.Request) -> web.Response:
    world, project = world_of(request), project_of(request)
    action = servers.delete(world, project, path_id(request, kind="server"))
    return ok({"action": render.action(action)})


@routes.get("/servers/{id}/actions")
async def list_server_actions(request: web.Request) -> web.Response:
    project = project_of(request)
    server = servers.get(project, path_id(request, kind="server"))
    items = [render.action(project.actions[a]) for a in server.action_ids]
    items = filter_by(items, request, name=False, status="status")
    return listed(request, "actions", items, resource="actions")


@routes.get("/servers/{id}/actions/{action_id}")
async def get_server_action(request: web.Request) -> web.Response:
    project = project_of(request)
    server = servers.get(project, path_id(request, kind="server"))
    action_id = path_id(request, "action_id", kind="action")
    if action_id not in server.action_ids:
        raise not_found("action", action_id)
    return ok({"action": render.action(project.actions[action_id])})


POWER_VERBS = {"poweron", "poweroff", "shutdown", "reboot", "reset"}


@routes.post("/servers/{id}/actions/{verb}")
async def server_action(request: web.Request) -> web.Response:
    world, project = world_of(request), project_of(request)
    server_id = path_id(request, kind="server")
    verb = request.match_info["verb"]
    body = await body_of(request)
    if verb in POWER_VERBS:
        action = servers.power_action(world, project, server_id, verb)
    elif verb == "create_image":
        snapshot, action = servers.create_image(world, project, server_id, body)
        return ok({"image": render.snapshot(snapshot), "action": render.action(action)}, 201)
    elif verb == "attach_to_network":
        action = servers.attach_to_network(world, project, server_id, body)
    elif verb == "detach_from_network":
        action = servers.detach_from_network(world, project, server_id, body)
    elif verb == "change_protection":
        server = servers.get(project, server_id)
        server.protection_delete = bool(body.get("delete", server.protection_delete))
        server.protection_rebuild = bool(body.get("rebuild", server.protection_rebuild))
        action = world.new_action(project, "change_protection", [(server.id, "server")], 0.0)
        action.succeed()
    else:
        raise ApiError("not_found", f"server action {verb!r} is not supported by the local Hetzner")
    return ok({"action": render.action(action)}, status=201)
