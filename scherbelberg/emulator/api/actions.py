"""/actions: one action by id, or several by `?id=` (listing all was removed by Hetzner)."""

from __future__ import annotations

from aiohttp import web

from ..model.errors import invalid_input, not_found
from . import render
from .common import filter_by, listed, ok, path_id, project_of

routes = web.RouteTableDef()


@routes.get("/actions")
async def list_actions(request: web.Request) -> web.Response:
    project = project_of(request)
    ids = request.query.getall("id", [])
    if not ids:
        raise invalid_input("id", "at least one id is required")
    if not all(i.isdigit() for i in ids):
        raise invalid_input("id", "ids must be integers")
    items = [render.action(project.actions[int(i)]) for i in ids if int(i) in project.actions]
    items = filter_by(items, request, name=False, status="status")
    return listed(request, "actions", items)


@routes.get("/actions/{id}")
async def get_action(request: web.Request) -> web.Response:
    project = project_of(request)
    action_id = path_id(request, kind="action")
    action = project.actions.get(action_id)
    if action is None:
        raise not_found("action", action_id)
    return ok({"action": render.action(action)})
