"""Private networks: address plans, subnets and membership.

Addresses are handed out here; the machine backend only plugs the machines in.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..machines.base import PrivateAttachment
from . import static_catalog
from .actions import Action
from .errors import ApiError, invalid_input, not_found
from .records import Network, Route, Server, Subnet
from .validation import check_labels, check_name, update_name_and_labels
from .world import Project, World, check_released

NETWORK_ZONES = {"eu-central", "us-east", "us-west", "ap-southeast"}
HETZNER_RESERVED = ipaddress.IPv4Address("172.31.1.1")


def get(project: Project, network_id: int) -> Network:
    network = project.networks.get(network_id)
    if network is None:
        raise not_found("network", network_id)
    return network


def _private_range(value: Any, field: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except (ValueError, TypeError):
        raise invalid_input(field, f"{value!r} is not an IPv4 network in CIDR notation") from None
    if not net.is_private or net.prefixlen > 24 or net.prefixlen < 8:
        raise invalid_input(field, "must be a private (RFC 1918) range between /8 and /24")
    return net


def _subnet(network: Network, body: Any) -> Subnet:
    if not isinstance(body, dict):
        raise invalid_input("subnets", "a subnet must be an object")
    subnet_type = body.get("type")
    if subnet_type not in ("cloud", "server", "vswitch"):
        raise invalid_input("type", "subnet type must be cloud, server or vswitch")
    zone = body.get("network_zone")
    if zone not in NETWORK_ZONES:
        raise invalid_input("network_zone", f"unknown network zone {zone!r}")
    if body.get("ip_range"):
        ip_range = _private_range(body["ip_range"], "ip_range")
        if not ip_range.subnet_of(network.ip_range):
            raise invalid_input("ip_range", "subnet must lie inside the network's ip_range")
    else:
        ip_range = _first_free_24(network)
    for other in network.subnets:
        if other.ip_range.overlaps(ip_range):
            raise ApiError("networks_overlap", f"subnet {ip_range} overlaps {other.ip_range}")
    return Subnet(
        type=subnet_type,
        ip_range=ip_range,
        network_zone=zone,
        gateway=network.gateway,
        vswitch_id=body.get("vswitch_id"),
    )


def _first_free_24(network: Network) -> ipaddress.IPv4Network:
    prefix = max(24, network.ip_range.prefixlen)
    for candidate in network.ip_range.subnets(new_prefix=prefix):
        if not any(s.ip_range.overlaps(candidate) for s in network.subnets):
            return candidate
    raise ApiError("no_subnet_available", f"network {network.name} has no free /{prefix}")


def create(world: World, project: Project, body: dict[str, Any]) -> Network:

    name = check_name(list(project.networks.values()), body.get("name"))
    if "ip_range" not in body:
        raise invalid_input("ip_range", "ip_range is required")
    ip_range = _private_range(body["ip_range"], "ip_range")
    labels = check_labels(body.get("labels"))
    project.check_limit("networks", len(project.networks))
    network = Network(
        id=world.new_id(), name=name, ip_range=ip_range, labels=labels, created=world.now()
    )
    network.expose_routes_to_vswitch = bool(body.get("expose_routes_to_vswitch", False))
    for sub in body.get("subnets") or []:
        network.subnets.append(_subnet(network, sub))
    for route in body.get("routes") or []:
        network.routes.append(_route(route))
    project.networks[network.id] = network
    return network


def _route(body: Any) -> Route:
    try:
        return Route(
            destination=ipaddress.IPv4Network(body["destination"]),
            gateway=ipaddress.IPv4Address(body["gateway"]),
        )
    except (KeyError, TypeError, ValueError):
        raise invalid_input("routes", "a route needs destination (CIDR) and gateway (IP)") from None


def update(project: Project, network_id: int, body: dict[str, Any]) -> Network:
    network = get(project, network_id)
    update_name_and_labels(network, project.networks.values(), body)
    if "expose_routes_to_vswitch" in body:
        network.expose_routes_to_vswitch = bool(body["expose_routes_to_vswitch"])
    return network


def add_subnet(world: World, project: Project, network_id: int, body: dict[str, Any]) -> Action:
    network = get(project, network_id)
    network.subnets.append(_subnet(network, body))
    action = world.new_action(
        project, "add_subnet", [(network.id, "network")], world.latency.network_action
    )
    world.runner.run(action)
    return action


def delete_subnet(world: World, project: Project, network_id: int, body: dict[str, Any]) -> Action:
    network = get(project, network_id)
    try:
        target = ipaddress.IPv4Network(body.get("ip_range"))
    except (TypeError, ValueError):
        raise invalid_input("ip_range", "ip_range of the subnet is required") from None
    subnet = next((s for s in network.subnets if s.ip_range == target), None)
    if subnet is None:
        raise invalid_input("ip_range", f"network has no subnet {target}")
    if any(ip in subnet.ip_range for ip in network.members.values()):
        raise ApiError("resource_in_use", f"subnet {target} still has servers")
    network.subnets.remove(subnet)
    action = world.new_action(
        project, "delete_subnet", [(network.id, "network")], world.latency.network_action
    )
    world.runner.run(action)
    return action


def delete(world: World, project: Project, network_id: int) -> None:
    """Servers still attached are detached (in the background, as on Hetzner)."""
    network = get(project, network_id)
    check_released(project, "networks", network.id, f"network {network.name}")
    for server_id in list(network.members):
        server = project.servers.get(server_id)
        if server is not None:
            leave(project, network, server)
            world.runner.spawn(world.backend.detach_network(server_id, network.id))
    del project.networks[network.id]
    world.runner.spawn(world.backend.delete_network(network.id))


def free_address(
    network: Network, location: str, wanted: ipaddress.IPv4Address | None
) -> ipaddress.IPv4Address:
    """The address a server in `location` would get in `network`; changes nothing.

    Raises what joining would raise, so a create can check before it makes anything.
    """
    zone = static_catalog.network_zone_of(location)
    subnets = [
        s for s in network.subnets if s.network_zone == zone and s.type in ("cloud", "server")
    ]
    if not subnets:
        raise ApiError(
            "no_subnet_available",
            f"network {network.name} has no subnet in network zone {zone}",
        )
    taken = set(network.members.values())
    if wanted is not None:
        if not any(wanted in s.ip_range for s in subnets):
            raise ApiError("ip_not_available", f"{wanted} is not in a subnet of the network")
        if wanted in taken or wanted in (network.gateway, HETZNER_RESERVED):
            raise ApiError("ip_not_available", f"{wanted} is already in use")
        address = wanted
    else:
        address = _next_free(subnets, taken | {network.gateway, HETZNER_RESERVED})
    return address


def join(
    project: Project, network: Network, server: Server, wanted: ipaddress.IPv4Address | None
) -> PrivateAttachment:
    """Give `server` an address in `network` (in a subnet of the server's network zone)."""
    address = free_address(network, server.location, wanted)
    network.members[server.id] = address
    server.private_net[network.id] = address
    return PrivateAttachment(
        network_id=network.id, ip=address, ip_range=network.ip_range, gateway=network.gateway
    )


def _next_free(subnets: list[Subnet], taken: set[ipaddress.IPv4Address]) -> ipaddress.IPv4Address:
    for subnet in subnets:
        for address in subnet.ip_range.hosts():
            if address not in taken:
                return address
    raise ApiError("ip_not_available", "the network's subnets are full")


def leave(project: Project, network: Network, server: Server) -> None:
    network.members.pop(server.id, None)
    server.private_net.pop(network.id, None)


def attachments(project: Project, server: Server) -> list[PrivateAttachment]:
    result = []
    for network_id, ip in server.private_net.items():
        network = project.networks[network_id]
        result.append(
            PrivateAttachment(
                network_id=network_id, ip=ip, ip_range=network.ip_range, gateway=network.gateway
            )
        )
    return result
