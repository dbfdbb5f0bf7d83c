"""/actions and /{kind}/actions: actions by id, or a resource kind's actions of the project.

Listing every action of a project at /actions was removed by Hetzner (it needs `?id=`); the
per-kind lists (`/servers/actions`, …) that replaced it list all of that kind's actions.
"""

from __future__ import annotations

from aiohttp import web

from ..model.actions import Action
from ..model.errors import invalid_input, not_found
from . import render
from .common import filter_by, listed, ok, path_id, project_of

routes = web.RouteTableDef()

# the kinds with a /{kind}/actions list in the spec that the local Hetzner has
KINDS = {"servers": "server", "networks": "network", "firewalls": "firewall", "images": "image"}


def _query_ids(request: web.Request) -> list[int]:
    ids = request.query.getall("id", [])
    if not all(i.isdigit() for i in ids):
        raise invalid_input("id", "ids must be integers")
    return [int(i) for i in ids]


def _listed(request: web.Request, actions: list[Action]) -> web.Response:
    ids = _query_ids(request)
    if ids:
        wanted = set(ids)
        actions = [a for a in actions if a.id in wanted]
    items = filter_by((render.action(a) for a in actions), request, name=False, status="status")
    return listed(request, "actions", items)


@routes.get("/actions")
async def list_actions(request: web.Request) -> web.Response:
    project = project_of(request)
    if not request.query.getall("id", []):
        raise invalid_input("id", "at least one id is required")
    return _listed(
        request, [project.actions[i] for i in _query_ids(request) if i in project.actions]
    )


@routes.get("/actions/{id}")
async def get_action(request: web.Request) -> web.Response:
    project = project_of(request)
    action_id = path_id(request, kind="action")
    action = project.actions.get(action_id)
    if action is None:
        raise not_found("action", action_id)
    return ok({"action": render.action(action)})


def _of_kind(action: Action, kind: str) -> bool:
    return any(rtype == KINDS[kind] for _, rtype in action.resources)


def _kind_routes(kind: str) -> None:
    async def list_kind_actions(request: web.Request) -> web.Response:
        project = project_of(request)
        return _listed(request, [a for a in project.actions.values() if _of_kind(a, kind)])

    async def get_kind_action(request: web.Request) -> web.Response:
        project = project_of(request)
        action_id = path_id(request, kind="action")
        action = project.actions.get(action_id)
        if action is None or not _of_kind(action, kind):
            raise not_found("action", action_id)
        return ok({"action": render.action(action)})

    routes.get(f"/{kind}/actions")(list_kind_actions)
    routes.get(f"/{kind}/actions/{{id}}")(get_kind_action)


for _kind in KINDS:
    _kind_routes(_kind)
