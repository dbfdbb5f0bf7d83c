"""Servers: create, power, delete, snapshot, attach to networks; each a real machine.

The order of events mirrors Hetzner: `POST /servers` answers at once with the server
`initializing` and two actions (`create_server`, then `start_server`); the machine is prepared
while `create_server` runs and boots while `start_server` runs.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import time
from dataclasses import replace
from typing import Any

from ..machines.base import MachineSpec
from . import firewalls, images_and_snapshots, networks, static_catalog
from .actions import Action
from .errors import ApiError, invalid_input, not_found
from .records import Server, Snapshot
from .validation import check_labels, check_name
from .world import Project, World

MAX_USER_DATA = 32 * 1024
HOSTNAME = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$")
MAX_PLACEMENT_GROUP = 10


def get(project: Project, server_id: int) -> Server:
    server = project.servers.get(server_id)
    if server is None:
        raise not_found("server", server_id)
    return server


def _resolve_ssh_keys(project: Project, refs: Any) -> list[int]:
    if refs is None:
        return []
    if not isinstance(refs, list):
        raise invalid_input("ssh_keys", "must be a list of IDs or names")
    ids: list[int] = []
    for ref in refs:
        key = next((k for k in project.ssh_keys.values() if ref in (k.id, k.name, str(k.id))), None)
        if key is None:
            raise invalid_input("ssh_keys", f"SSH key {ref!r} not found")
        ids.append(key.id)
    return ids


def _resolve_image(project: Project, ref: Any, architecture: str) -> tuple[int, str, str | None]:
    """Image id, os flavor and version for a system image name/id or a snapshot id."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        snapshot = project.snapshots.get(int(ref))
        if snapshot is not None:
            if snapshot.status != "available":
                raise invalid_input("image", f"image {ref} is not available yet")
            if snapshot.architecture != architecture:
                raise invalid_input(
                    "image",
                    f"image {ref} is {snapshot.architecture}, server type is {architecture}",
                )
            return snapshot.id, snapshot.os_flavor, snapshot.os_version
    if not isinstance(ref, int | str):
        raise invalid_input("image", "image must be an ID or a name")
    image = static_catalog.find_system_image(ref, architecture)
    if image is None:
        raise invalid_input("image", f"image {ref!r} not found for architecture {architecture}")
    return image.id, image.os_flavor, image.os_version


def _resolve_location(body: dict[str, Any]) -> str:
    location, datacenter = body.get("location"), body.get("datacenter")
    if location is not None and datacenter is not None:
        raise invalid_input("location", "location and datacenter are mutually exclusive")
    if datacenter is not None:
        dc = static_catalog.find_datacenter(datacenter)
        if dc is None:
            raise invalid_input("datacenter", f"datacenter {datacenter!r} not found")
        return dc.location.name
    if location is None:
        return static_catalog.DEFAULT_LOCATION_NAME
    loc = static_catalog.find_location(location)
    if loc is None:
        raise invalid_input("location", f"location {location!r} not found")
    return loc.name


def create(world: World, project: Project, body: dict[str, Any]) -> dict[str, Any]:
    """POST /servers: validate everything first, so a rejected request creates nothing."""
    name = body.get("name")
    if not isinstance(name, str) or not HOSTNAME.match(name):
        raise invalid_input("name", "name must be a valid hostname (RFC 1123)")
    check_name(list(project.servers.values()), name)
    server_type = static_catalog.find_server_type(body.get("server_type"))
    if server_type is None:
        raise invalid_input("server_type", f"server type {body.get('server_type')!r} not found")
    location = _resolve_location(body)
    if not server_type.available_in(location):
        raise ApiError(
            "invalid_input",
            f"server type {server_type.name} is not available in {location}",
            {"fields": [{"name": "server_type", "messages": ["not available in location"]}]},
        )
    if "image" not in body:
        raise invalid_input("image", "image is required")
    image_id, _, _ = _resolve_image(project, body["image"], server_type.architecture)
    user_data = body.get("user_data")
    if user_data is not None:
        if not isinstance(user_data, str):
            raise invalid_input("user_data", "user_data must be a string")
        if len(user_data.encode()) > MAX_USER_DATA:
            raise invalid_input("user_data", f"user_data is limited to {MAX_USER_DATA} bytes")
    labels = check_labels(body.get("labels"))
    ssh_key_ids = _resolve_ssh_keys(project, body.get("ssh_keys"))
    network_ids = body.get("networks") or []
    if not isinstance(network_ids, list) or not all(isinstance(n, int) for n in network_ids):
        raise invalid_input("networks", "networks must be a list of IDs")
    for network_id in network_ids:
        if network_id not in project.networks:
            raise invalid_input("networks", f"network {network_id} not found")
    firewall_ids = []
    for entry in body.get("firewalls") or []:
        fid = entry.get("firewall") if isinstance(entry, dict) else None
        if fid not in project.firewalls:
            raise invalid_input("firewalls", f"firewall {fid!r} not found")
        firewall_ids.append(fid)
    placement_group_id = body.get("placement_group")
    if placement_group_id is not None:
        group = project.placement_groups.get(placement_group_id)
        if group is None:
            raise invalid_input(
                "placement_group", f"placement group {placement_group_id!r} not found"
            )
        if len(group.servers) >= MAX_PLACEMENT_GROUP:
            raise ApiError(
                "placement_error",
                f"placement group {group.name} already holds {MAX_PLACEMENT_GROUP} servers",
            )
    public_net = body.get("public_net") or {}
    enable_ipv4 = bool(public_net.get("enable_ipv4", True))
    enable_ipv6 = bool(public_net.get("enable_ipv6", True))
    start = body.get("start_after_create", True)
    if not isinstance(start, bool):
        raise invalid_input("start_after_create", "must be a boolean")
    project.check_limit("servers", len(project.servers))
    if world.faults.is_unavailable(server_type.name, location):
        raise ApiError(
            "resource_unavailable",
            f"server type {server_type.name} is unavailable in {location} at the moment",
        )
    for network_id in network_ids:  # no subnet in the zone, or a full one: nothing is made
        networks.free_address(project.networks[network_id], location, None)

    # -- from here on nothing can be rejected: make it --
    server = Server(
        id=world.new_id(),
        name=name,
        status="initializing",
        created=world.now(),
        server_type=server_type.name,
        location=location,
        image_id=image_id,
        labels=labels,
        user_data=user_data,
        ssh_key_ids=ssh_key_ids,
        public_ipv4=world.allocate_public_ipv4() if enable_ipv4 else None,
        public_ipv4_id=world.new_id() if enable_ipv4 else None,
        public_ipv6_id=world.new_id() if enable_ipv6 else None,
        placement_group=placement_group_id,
    )
    project.servers[server.id] = server
    world.track_server(project, server.id)
    if placement_group_id is not None:
        project.placement_groups[placement_group_id].servers.append(server.id)
    silence = world.faults.dhcp_silence(name)
    attachments = [
        replace(networks.join(project, project.networks[nid], server, None), dhcp_silence=silence)
        for nid in network_ids
    ]
    for fid in firewall_ids:
        project.firewalls[fid].applied_servers.append(server.id)

    spec = MachineSpec(
        server_id=server.id,
        hostname=name,
        image_id=image_id,
        public_ipv4=server.public_ipv4,
        user_data=user_data,
        ssh_public_keys=[project.ssh_keys[k].public_key for k in ssh_key_ids],
        private_networks=attachments,
        memory_mib=int(server_type.memory * 1024),
        cpus=server_type.cores,
        architecture=server_type.architecture,
        server_type=server_type.name,
    )
    create_action = world.new_action(
        project, "create_server", [(server.id, "server")], world.latency.create_server
    )
    stuck = world.faults.is_stuck(name)

    async def prepare() -> None:
        await world.backend.create(spec)
        await firewalls.enforce(world, project, [server])

    def created() -> None:
        if server.id in project.servers:
            server.status = "starting" if start else "off"

    def failed() -> None:
        if server.id in project.servers:
            server.status = "off"

    world.runner.run(
        create_action,
        prepare,
        fails=world.faults.action_fails("create_server"),
        hold=stuck,
        on_success=created,
        on_error=failed,
    )
    next_actions: list[Action] = []
    if start:
        next_actions.append(_start(world, project, server, after=create_action))
    return {
        "server": server,
        "action": create_action,
        "next_actions": next_actions,
        "root_password": None if ssh_key_ids else secrets.token_urlsafe(15),
    }


def _start(world: World, project: Project, server: Server, after: Action | None = None) -> Action:
    action = world.new_action(
        project, "start_server", [(server.id, "server")], world.latency.start_server
    )

    async def boot() -> None:
        if server.id not in project.servers:
            return
        server.status = "starting"
        if world.latency.guest_boot > 0:
            # the VM is "running" before its guest is up; boot the machine a little later
            async def late_boot() -> None:
                import asyncio

                await asyncio.sleep(world.latency.start_server + world.latency.guest_boot)
                if server.id in project.servers and server.status == "running":
                    await world.backend.power_on(server.id)

            world.runner.spawn(late_boot())
            return
        await world.backend.power_on(server.id)

    def running() -> None:
        if server.id in project.servers:
            server.status = "running"

    def failed() -> None:
        if server.id in project.servers:
            server.status = "off"

    world.runner.run(
        action,
        boot,
        after=after,
        fails=world.faults.action_fails("start_server"),
        on_success=running,
        on_error=failed,
    )
    return action


def _lock(server: Server) -> None:
    if server.locked:
        raise ApiError("locked", f"server {server.id} is locked by another action")


def power_action(world: World, project: Project, server_id: int, verb: str) -> Action:
    """poweron, poweroff, shutdown, reboot, reset."""
    server = get(project, server_id)
    if server.status == "initializing":
        raise ApiError("locked", f"server {server.id} is still initializing")
    if verb == "poweron":
        if server.status == "running":
            return _finished(world, project, server, "start_server")
        return _start(world, project, server)
    backend = world.backend
    command = {
        "poweroff": "stop_server",
        "shutdown": "shutdown_server",
        "reboot": "reboot_server",
        "reset": "reset_server",
    }[verb]
    duration = (
        world.latency.reboot_server if verb in ("reboot", "reset") else world.latency.stop_server
    )
    action = world.new_action(project, command, [(server.id, "server")], duration)

    async def work() -> None:
        if verb == "poweroff":
            server.status = "stopping"
            await backend.power_off(server.id)
        elif verb == "shutdown":
            server.status = "stopping"
            await backend.shutdown(server.id, timeout=60.0)
        elif verb == "reboot":
            if backend.is_running(server.id):
                await backend.reboot(server.id)
            else:
                await backend.power_on(server.id)
        else:  # reset: hard power cycle
            await backend.power_off(server.id)
            await backend.power_on(server.id)

    def done() -> None:
        if server.id in project.servers:
            server.status = "off" if verb in ("poweroff", "shutdown") else "running"

    world.runner.run(action, work, fails=world.faults.action_fails(command), on_success=done)
    return action


def _finished(world: World, project: Project, server: Server, command: str) -> Action:
    action = world.new_action(project, command, [(server.id, "server")], 0.0)
    action.succeed()
    return action


def delete(world: World, project: Project, server_id: int) -> Action:
    """DELETE /servers/{id}: gone from the API at once; the machine goes in the background."""
    server = get(project, server_id)
    if server.protection_delete:
        raise ApiError("protected", f"server {server.id} is protected against deletion")
    action = world.new_action(
        project, "delete_server", [(server.id, "server")], world.latency.delete_server
    )
    del project.servers[server.id]
    project.deleting.add(server.id)
    release = world.faults.release_delay
    if release is None:
        release = world.latency.release_delay
    held: list[tuple[str, int]] = []
    if release > 0:  # held while the delete runs, and `release` seconds after it ended
        held = [("networks", nid) for nid in server.private_net]
        held += [
            ("placement_groups", g.id)
            for g in project.placement_groups.values()
            if server.id in g.servers
        ]
        held += [("firewalls", f.id) for f in project.firewalls.values() if f.applies_to(server)]
        for key in held:
            project.held_by.setdefault(key, set()).add(server.id)
    for network_id in list(server.private_net):
        network = project.networks.get(network_id)
        if network is not None:
            network.members.pop(server.id, None)
    for group in project.placement_groups.values():
        if server.id in group.servers:
            group.servers.remove(server.id)
    for fw in project.firewalls.values():
        if server.id in fw.applied_servers:
            fw.applied_servers.remove(server.id)
    for image in list(project.snapshots.values()):  # backups are bound to their server
        if image.bound_to == server.id:
            del project.snapshots[image.id]

    async def destroy() -> None:
        try:
            await world.backend.destroy(server.id)
        finally:
            project.deleting.discard(server.id)
            world.untrack_server(server.id)
            world.release_public_ipv4(server.public_ipv4)

    def let_go() -> None:
        until = time.monotonic() + release
        for key in held:
            project.held_by.get(key, set()).discard(server.id)
            project.held_until[key] = max(project.held_until.get(key, 0.0), until)

    # the hold ends `release` seconds after the delete action ends (as a client sees it end)
    world.runner.run(action, destroy, on_success=let_go, on_error=let_go)
    return action


def update(project: Project, server_id: int, body: dict[str, Any]) -> Server:
    server = get(project, server_id)
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or not HOSTNAME.match(name):
            raise invalid_input("name", "name must be a valid hostname (RFC 1123)")
        if name != server.name:
            check_name(list(project.servers.values()), name)
        server.name = name
    if "labels" in body:
        server.labels = check_labels(body["labels"])
    return server


def create_image(
    world: World, project: Project, server_id: int, body: dict[str, Any]
) -> tuple[Snapshot, Action]:
    server = get(project, server_id)
    image_type = body.get("type", "snapshot")
    if image_type not in ("snapshot", "backup"):
        raise invalid_input("type", "type must be snapshot or backup")
    if image_type == "backup":
        # "Backup Images are only available when the backup option is enabled for the
        # Server" (the spec); the local Hetzner has no enable_backup, so no server has it
        raise invalid_input("type", f"backups are not enabled for server {server.id}")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid_input("description", "description must be a string")
    labels = check_labels(body.get("labels"))
    project.check_limit("snapshots", len(project.snapshots))
    server_type = static_catalog.find_server_type(server.server_type)
    assert server_type is not None
    flavor, version = images_and_snapshots.os_of(project, server.image_id)
    snapshot = Snapshot(
        id=world.new_id(),
        description=description or f"{server.name}-snapshot",
        type=image_type,
        status="creating",
        labels=labels,
        created=world.now(),
        architecture=server_type.architecture,
        disk_size=float(server_type.disk),
        image_size=None,
        created_from=(server.id, server.name),
        os_flavor=flavor,
        os_version=version,
        bound_to=server.id if image_type == "backup" else None,
    )
    project.snapshots[snapshot.id] = snapshot
    action = world.new_action(
        project,
        "create_image",
        [(server.id, "server"), (snapshot.id, "image")],
        world.latency.create_image,
    )

    async def work() -> None:
        await world.backend.snapshot(server.id, snapshot.id)

    def available() -> None:
        snapshot.status = "available"
        snapshot.image_size = round(snapshot.disk_size * 0.05, 2)

    def failed() -> None:
        project.snapshots.pop(snapshot.id, None)

    world.runner.run(
        action,
        work,
        fails=world.faults.action_fails("create_image"),
        on_success=available,
        on_error=failed,
    )
    return snapshot, action


def attach_to_network(
    world: World, project: Project, server_id: int, body: dict[str, Any]
) -> Action:
    server = get(project, server_id)
    network_id = body.get("network")
    network = project.networks.get(network_id) if isinstance(network_id, int) else None
    if network is None:
        raise invalid_input("network", f"network {network_id!r} not found")
    if network.id in server.private_net:
        raise ApiError(
            "conflict", f"server {server.id} is already attached to network {network.id}"
        )
    wanted = body.get("ip")
    ip = None
    if wanted is not None:
        try:
            ip = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise invalid_input("ip", f"{wanted!r} is not an IPv4 address") from None
    attachment = replace(
        networks.join(project, network, server, ip),
        dhcp_silence=world.faults.dhcp_silence(server.name),
    )
    action = world.new_action(
        project,
        "attach_to_network",
        [(server.id, "server"), (network.id, "network")],
        world.latency.network_action,
    )

    async def work() -> None:
        await world.backend.attach_network(server.id, attachment)

    world.runner.run(action, work)
    return action


def detach_from_network(
    world: World, project: Project, server_id: int, body: dict[str, Any]
) -> Action:
    server = get(project, server_id)
    network_id = body.get("network")
    if not isinstance(network_id, int) or network_id not in server.private_net:
        raise invalid_input("network", f"server is not attached to network {network_id!r}")
    networks.leave(project, project.networks[network_id], server)
    action = world.new_action(
        project,
        "detach_from_network",
        [(server.id, "server"), (network_id, "network")],
        world.latency.network_action,
    )

    async def work() -> None:
        await world.backend.detach_network(server.id, network_id)

    world.runner.run(action, work)
    return action
