"""/ssh_keys, /networks, /firewalls, /placement_groups and /images (snapshots)."""

from __future__ import annotations

from aiohttp import web

from ..model import (
    firewalls,
    images_and_snapshots,
    networks,
    placement_groups,
    ssh_keys,
    static_catalog,
)
from ..model.errors import ApiError
from . import render
from .common import body_of, filter_by, listed, ok, path_id, project_of, world_of

routes = web.RouteTableDef()


def no_content() -> web.Response:
    return web.Response(status=204)


# -- ssh keys ---------------------------------------------------------------------------------
@routes.get("/ssh_keys")
async def list_ssh_keys(request: web.Request) -> web.Response:
    project = project_of(request)
    items = filter_by(
        (render.ssh_key(k) for k in project.ssh_keys.values()), request, fingerprint="fingerprint"
    )
    return listed(request, "ssh_keys", items)


@routes.post("/ssh_keys")
async def create_ssh_key(request: web.Request) -> web.Response:
    key = ssh_keys.create(world_of(request), project_of(request), await body_of(request))
    return ok({"ssh_key": render.ssh_key(key)}, 201)


@routes.get("/ssh_keys/{id}")
async def get_ssh_key(request: web.Request) -> web.Response:
    return ok({"ssh_key": render.ssh_key(ssh_keys.get(project_of(request), path_id(request)))})


@routes.put("/ssh_keys/{id}")
async def update_ssh_key(request: web.Request) -> web.Response:
    key = ssh_keys.update(project_of(request), path_id(request), await body_of(request))
    return ok({"ssh_key": render.ssh_key(key)})


@routes.delete("/ssh_keys/{id}")
async def delete_ssh_key(request: web.Request) -> web.Response:
    ssh_keys.delete(project_of(request), path_id(request, kind="ssh_key"))
    return no_content()


# -- networks ---------------------------------------------------------------------------------
@routes.get("/networks")
async def list_networks(request: web.Request) -> web.Response:
    project = project_of(request)
    items = filter_by((render.network(n) for n in project.networks.values()), request)
    return listed(request, "networks", items)


@routes.post("/networks")
async def create_network(request: web.Request) -> web.Response:
    network = networks.create(world_of(request), project_of(request), await body_of(request))
    return ok({"network": render.network(network)}, 201)


@routes.get("/networks/{id}")
async def get_network(request: web.Request) -> web.Response:
    network = networks.get(project_of(request), path_id(request, kind="network"))
    return ok({"network": render.network(network)})


@routes.put("/networks/{id}")
async def update_network(request: web.Request) -> web.Response:
    network = networks.update(
        project_of(request), path_id(request, kind="network"), await body_of(request)
    )
    return ok({"network": render.network(network)})


@routes.delete("/networks/{id}")
async def delete_network(request: web.Request) -> web.Response:
    networks.delete(world_of(request), project_of(request), path_id(request, kind="network"))
    return no_content()


@routes.post("/networks/{id}/actions/{verb}")
async def network_action(request: web.Request) -> web.Response:
    world, project = world_of(request), project_of(request)
    network_id = path_id(request, kind="network")
    verb = request.match_info["verb"]
    body = await body_of(request)
    if verb == "add_subnet":
        action = networks.add_subnet(world, project, network_id, body)
    elif verb == "delete_subnet":
        action = networks.delete_subnet(world, project, network_id, body)
    else:
        raise ApiError(
            "not_found", f"network action {verb!r} is not supported by the local Hetzner"
        )
    return ok({"action": render.action(action)}, 201)


# -- firewalls --------------------------------------------------------------------------------
@routes.get("/firewalls")
async def list_firewalls(request: web.Request) -> web.Response:
    project = project_of(request)
    items = filter_by((render.firewall(project, f) for f in project.firewalls.values()), request)
    return listed(request, "firewalls", items)


@routes.post("/firewalls")
async def create_firewall(request: web.Request) -> web.Response:
    project = project_of(request)
    firewall, actions = firewalls.create(world_of(request), project, await body_of(request))
    return ok(
        {
            "firewall": render.firewall(project, firewall),
            "actions": [render.action(a) for a in actions],
        },
        201,
    )


@routes.get("/firewalls/{id}")
async def get_firewall(request: web.Request) -> web.Response:
    project = project_of(request)
    firewall = firewalls.get(project, path_id(request, kind="firewall"))
    return ok({"firewall": render.firewall(project, firewall)})


@routes.put("/firewalls/{id}")
async def update_firewall(request: web.Request) -> web.Response:
    project = project_of(request)
    firewall = firewalls.update(project, path_id(request, kind="firewall"), await body_of(request))
    return ok({"firewall": render.firewall(project, firewall)})


@routes.delete("/firewalls/{id}")
async def delete_firewall(request: web.Request) -> web.Response:
    firewalls.delete(world_of(request), project_of(request), path_id(request, kind="firewall"))
    return no_content()


FIREWALL_VERBS = {
    "set_rules": firewalls.set_rules,
    "apply_to_resources": firewalls.apply_to,
    "remove_from_resources": firewalls.remove_from,
}


@routes.post("/firewalls/{id}/actions/{verb}")
async def firewall_action(request: web.Request) -> web.Response:
    verb = request.match_info["verb"]
    operation = FIREWALL_VERBS.get(verb)
    if operation is None:
        raise ApiError(
            "not_found", f"firewall action {verb!r} is not supported by the local Hetzner"
        )
    actions = operation(
        world_of(request),
        project_of(request),
        path_id(request, kind="firewall"),
        await body_of(request),
    )
    return ok({"actions": [render.action(a) for a in actions]}, 201)


# -- placement groups -------------------------------------------------------------------------
@routes.get("/placement_groups")
async def list_placement_groups(request: web.Request) -> web.Response:
    project = project_of(request)
    items = filter_by(
        (render.placement_group(g) for g in project.placement_groups.values()), request, type="type"
    )
    return listed(request, "placement_groups", items)


@routes.post("/placement_groups")
async def create_placement_group(request: web.Request) -> web.Response:
    group = placement_groups.create(world_of(request), project_of(request), await body_of(request))
    return ok({"placement_group": render.placement_group(group), "action": None}, 201)


@routes.get("/placement_groups/{id}")
async def get_placement_group(request: web.Request) -> web.Response:
    group = placement_groups.get(project_of(request), path_id(request, kind="placement_group"))
    return ok({"placement_group": render.placement_group(group)})


@routes.put("/placement_groups/{id}")
async def update_placement_group(request: web.Request) -> web.Response:
    group = placement_groups.update(
        project_of(request), path_id(request, kind="placement_group"), await body_of(request)
    )
    return ok({"placement_group": render.placement_group(group)})


@routes.delete("/placement_groups/{id}")
async def delete_placement_group(request: web.Request) -> web.Response:
    placement_groups.delete(project_of(request), path_id(request, kind="placement_group"))
    return no_content()


# -- images -----------------------------------------------------------------------------------
@routes.get("/images")
async def list_images(request: web.Request) -> web.Response:
    project = project_of(request)
    items = [img.to_json() for img in static_catalog.SYSTEM_IMAGES]
    items += [render.snapshot(s) for s in project.snapshots.values()]
    if request.query.get("include_deprecated", "false") != "true":
        items = [i for i in items if not i.get("deprecated")]
    items = filter_by(
        items,
        request,
        type="type",
        status="status",
        architecture="architecture",
        bound_to="bound_to",
    )
    return listed(request, "images", items)


@routes.get("/images/{id}")
async def get_image(request: web.Request) -> web.Response:
    project = project_of(request)
    image_id = path_id(request, kind="image")
    data = render.image(project, image_id)
    if data is None:
        raise ApiError("not_found", f"image with ID {image_id} not found")
    return ok({"image": data})


@routes.put("/images/{id}")
async def update_image(request: web.Request) -> web.Response:
    snapshot = images_and_snapshots.update(
        project_of(request), path_id(request, kind="image"), await body_of(request)
    )
    return ok({"image": render.snapshot(snapshot)})


@routes.delete("/images/{id}")
async def delete_image(request: web.Request) -> web.Response:
    images_and_snapshots.delete(
        world_of(request), project_of(request), path_id(request, kind="image")
    )
    return no_content()
