"""/actions, /{kind}/actions and /{kind}/{id}/actions: actions by id, a resource kind's
actions of the project, or one resource's (servers have their own, in server_routes.py).

Listing every action of a project at /actions was removed by Hetzner (it needs `?id=`); the
per-kind lists (`/servers/actions`, …) that replaced it list all of that kind's actions.
"""

from __future__ import annotations

from aiohttp import web

from ..model import static_catalog
from ..model.actions import Action
from ..model.errors import invalid_input, not_found
from ..model.world import Project
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


def _exists(project: Project, kind: str, ident: int) -> bool:
    if kind == "networks":
        return ident in project.networks
    if kind == "firewalls":
        return ident in project.firewalls
    return ident in project.snapshots or static_catalog.find_system_image(ident, None) is not None


def _resource_routes(kind: str) -> None:
    """GET /{kind}/{id}/actions[/{action_id}]: the actions of one network, firewall, image."""

    def of_resource(request: web.Request) -> list[Action]:
        project = project_of(request)
        ident = path_id(request, kind=KINDS[kind])
        if not _exists(project, kind, ident):
            raise not_found(KINDS[kind], ident)
        mine = (ident, KINDS[kind])
        return [a for a in project.actions.values() if mine in a.resources]

    async def list_resource_actions(request: web.Request) -> web.Response:
        actions = of_resource(request)
        items = filter_by((render.action(a) for a in actions), request, name=False, status="status")
        return listed(request, "actions", items)

    async def get_resource_action(request: web.Request) -> web.Response:
        action_id = path_id(request, "action_id", kind="action")
        found = [a for a in of_resource(request) if a.id == action_id]
        if not found:
            raise not_found("action", action_id)
        return ok({"action": render.action(found[0])})

    routes.get(f"/{kind}/{{id}}/actions")(list_resource_actions)
    routes.get(f"/{kind}/{{id}}/actions/{{action_id}}")(get_resource_action)


for _kind in KINDS:
    _kind_routes(_kind)
    if _kind != "servers":
        _resource_routes(_kind)
