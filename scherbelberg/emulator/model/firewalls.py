"""Firewalls: rules, where they apply, and the packet filter policy that follows for a server.

Whenever rules, applications or server labels change, `enforce` recomputes each affected
server's policy and hands it to the machine backend, which filters real packets.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..machines.base import FirewallPolicy, FirewallRule
from .actions import Action
from .errors import ApiError, invalid_input, not_found
from .label_selectors import parse_selector
from .records import Firewall, FirewallRuleSpec, Server
from .validation import check_labels, check_name, update_name_and_labels
from .world import Project, World, check_released

MAX_RULES = 50
MAX_IPS = 100
PORTLESS = {"icmp", "esp", "gre"}


def get(project: Project, firewall_id: int) -> Firewall:
    firewall = project.firewalls.get(firewall_id)
    if firewall is None:
        raise not_found("firewall", firewall_id)
    return firewall


def _ips(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_IPS:
        raise invalid_input(field, f"must be a list of at most {MAX_IPS} CIDRs")
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except (TypeError, ValueError):
            raise invalid_input(field, f"{item!r} is not an IP network in CIDR notation") from None
    return tuple(value)


def _port(value: Any, protocol: str) -> str | None:
    if protocol in PORTLESS:
        if value not in (None, ""):
            raise invalid_input("port", f"protocol {protocol} has no ports")
        return None
    if value is None:
        raise invalid_input("port", f"port is required for {protocol}")
    if not isinstance(value, str):
        raise invalid_input("port", "port must be a string like '22', '1024-5000' or 'any'")
    if value == "any":
        return value
    low, _, high = value.partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise invalid_input("port", f"{value!r} is not a port or port range") from None
    if not (1 <= lo <= hi <= 65535):
        raise invalid_input("port", f"{value!r} is not a port or port range")
    return value


def parse_rules(value: Any) -> list[FirewallRuleSpec]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_RULES:
        raise invalid_input("rules", f"rules must be a list of at most {MAX_RULES}")
    rules = []
    for raw in value:
        if not isinstance(raw, dict):
            raise invalid_input("rules", "a rule must be an object")
        direction = raw.get("direction")
        if direction not in ("in", "out"):
            raise invalid_input("direction", "direction must be in or out")
        protocol = raw.get("protocol")
        if protocol not in ("tcp", "udp", "icmp", "esp", "gre"):
            raise invalid_input("protocol", "protocol must be tcp, udp, icmp, esp or gre")
        sources = _ips(raw.get("source_ips"), "source_ips")
        destinations = _ips(raw.get("destination_ips"), "destination_ips")
        if direction == "in" and not sources:
            raise invalid_input("source_ips", "an inbound rule needs source_ips")
        if direction == "out" and not destinations:
            raise invalid_input("destination_ips", "an outbound rule needs destination_ips")
        description = raw.get("description")
        if description is not None and not isinstance(description, str):
            raise invalid_input("description", "description must be a string")
        rules.append(
            FirewallRuleSpec(
                direction=direction,
                protocol=protocol,
                port=_port(raw.get("port"), protocol),
                source_ips=sources if direction == "in" else (),
                destination_ips=destinations if direction == "out" else (),
                description=description,
            )
        )
    return rules


def _parse_apply_to(project: Project, value: Any) -> tuple[list[int], list[str]]:
    servers: list[int] = []
    selectors: list[str] = []
    if value is None:
        return servers, selectors
    if not isinstance(value, list):
        raise invalid_input("apply_to", "apply_to must be a list")
    for entry in value:
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind == "server":
            sid = (entry.get("server") or {}).get("id")
            if sid not in project.servers:
                raise invalid_input("apply_to", f"server {sid!r} not found")
            servers.append(sid)
        elif kind == "label_selector":
            selector = (entry.get("label_selector") or {}).get("selector")
            try:
                parse_selector(selector or "")
            except ValueError as exc:
                raise invalid_input("label_selector", str(exc)) from None
            if not selector:
                raise invalid_input("label_selector", "selector is required")
            selectors.append(selector)
        else:
            raise invalid_input("type", "apply_to type must be server or label_selector")
    return servers, selectors


def create(world: World, project: Project, body: dict[str, Any]) -> tuple[Firewall, list[Action]]:

    name = check_name(list(project.firewalls.values()), body.get("name"))
    labels = check_labels(body.get("labels"))
    rules = parse_rules(body.get("rules"))
    servers, selectors = _parse_apply_to(project, body.get("apply_to"))
    project.check_limit("firewalls", len(project.firewalls))
    firewall = Firewall(
        id=world.new_id(), name=name, labels=labels, created=world.now(), rules=rules
    )
    project.firewalls[firewall.id] = firewall
    actions = []
    if rules:
        actions.append(_enforcing_action(world, project, "set_firewall_rules", firewall, []))
    for sid in servers:
        firewall.applied_servers.append(sid)
        actions.append(_enforcing_action(world, project, "apply_firewall", firewall, [sid]))
    for selector in selectors:
        firewall.applied_selectors.append(selector)
        actions.append(_enforcing_action(world, project, "apply_firewall", firewall, []))
    return firewall, actions


def update(project: Project, firewall_id: int, body: dict[str, Any]) -> Firewall:
    firewall = get(project, firewall_id)
    update_name_and_labels(firewall, project.firewalls.values(), body)
    return firewall


def set_rules(
    world: World, project: Project, firewall_id: int, body: dict[str, Any]
) -> list[Action]:
    firewall = get(project, firewall_id)
    if "rules" not in body:
        raise invalid_input("rules", "rules is required")
    firewall.rules = parse_rules(body["rules"])
    return [_enforcing_action(world, project, "set_firewall_rules", firewall, [])]


def apply_to(
    world: World, project: Project, firewall_id: int, body: dict[str, Any]
) -> list[Action]:
    firewall = get(project, firewall_id)
    servers, selectors = _parse_apply_to(project, body.get("apply_to"))
    for sid in servers:
        if sid in firewall.applied_servers:
            raise ApiError("firewall_already_applied", f"firewall already applied to server {sid}")
    for selector in selectors:
        if selector in firewall.applied_selectors:
            raise ApiError("firewall_already_applied", f"firewall already applied to {selector}")
    firewall.applied_servers.extend(servers)
    firewall.applied_selectors.extend(selectors)
    return [_enforcing_action(world, project, "apply_firewall", firewall, servers)]


def remove_from(
    world: World, project: Project, firewall_id: int, body: dict[str, Any]
) -> list[Action]:
    firewall = get(project, firewall_id)
    servers, selectors = _parse_apply_to(project, body.get("remove_from"))
    # check everything first: a refused request removes nothing
    for sid in servers:
        if sid in firewall.applied_servers:
            continue
        if firewall.applies_to(project.servers[sid]):
            raise ApiError(
                "firewall_managed_by_label_selector",
                f"firewall is applied to server {sid} through a label selector"
                " and cannot be removed from it manually",
            )
        raise ApiError("firewall_already_removed", f"firewall is not applied to server {sid}")
    for selector in selectors:
        if selector not in firewall.applied_selectors:
            raise ApiError("firewall_already_removed", f"firewall is not applied to {selector}")
    for sid in servers:
        if sid in firewall.applied_servers:
            firewall.applied_servers.remove(sid)
    for selector in selectors:
        if selector in firewall.applied_selectors:
            firewall.applied_selectors.remove(selector)
    return [_enforcing_action(world, project, "remove_firewall", firewall, servers)]


def delete(world: World, project: Project, firewall_id: int) -> None:
    firewall = get(project, firewall_id)
    check_released(project, "firewalls", firewall.id, f"firewall {firewall.name}")
    in_use = [s for s in project.servers.values() if firewall.applies_to(s)]
    if in_use:
        raise ApiError(
            "resource_in_use",
            f"firewall {firewall.name} is still applied to {len(in_use)} server(s)",
        )
    del project.firewalls[firewall.id]


def _enforcing_action(
    world: World, project: Project, command: str, firewall: Firewall, server_ids: list[int]
) -> Action:
    resources = [(firewall.id, "firewall")] + [(sid, "server") for sid in server_ids]
    action = world.new_action(project, command, resources, world.latency.firewall_action)

    async def work() -> None:
        await enforce(world, project, list(project.servers.values()))

    world.runner.run(action, work)
    return action


def policy_for(project: Project, server: Server) -> FirewallPolicy:
    applied = [fw for fw in project.firewalls.values() if fw.applies_to(server)]
    if not applied:
        return FirewallPolicy(applied=False)
    rules: list[FirewallRule] = []
    for fw in applied:
        for spec in fw.rules:
            addresses = spec.source_ips if spec.direction == "in" else spec.destination_ips
            port_range = None
            if spec.port not in (None, "any"):
                low, _, high = spec.port.partition("-")
                port_range = (int(low), int(high or low))
            rules.append(
                FirewallRule(
                    direction=spec.direction,  # type: ignore[arg-type]
                    protocol=spec.protocol,  # type: ignore[arg-type]
                    port_range=port_range,
                    addresses=tuple(ipaddress.ip_network(a, strict=False) for a in addresses),
                )
            )
    return FirewallPolicy(applied=True, rules=tuple(rules))


async def enforce(world: World, project: Project, servers: list[Server]) -> None:
    """Push the current policy of each server to the backend (it skips unchanged ones)."""
    for server in servers:
        if server.id in project.servers:
            await world.backend.set_firewall(server.id, policy_for(project, server))


def applied_firewalls(project: Project, server: Server) -> list[Firewall]:
    return [fw for fw in project.firewalls.values() if fw.applies_to(server)]
