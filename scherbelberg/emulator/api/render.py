"""Model objects → Hetzner JSON. The one place that knows the wire shape of each resource.

hcloud-python reads some keys without defaults (see docs/emulator.md), so every object carries
every key the API documents, with null where Hetzner sends null.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

from ..machines.base import private_mac
from ..model import firewalls, static_catalog
from ..model.actions import Action
from ..model.records import Firewall, Network, PlacementGroup, Server, Snapshot, SshKey
from ..model.world import Project


def timestamp(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def action(a: Action) -> dict[str, Any]:
    return {
        "id": a.id,
        "command": a.command,
        "status": a.status,
        "progress": a.progress,
        "started": timestamp(a.started),
        "finished": timestamp(a.finished),
        "resources": [{"id": rid, "type": rtype} for rid, rtype in a.resources],
        "error": {"code": a.error[0], "message": a.error[1]} if a.error else None,
    }


def ssh_key(k: SshKey) -> dict[str, Any]:
    return {
        "id": k.id,
        "name": k.name,
        "fingerprint": k.fingerprint,
        "public_key": k.public_key,
        "labels": k.labels,
        "created": timestamp(k.created),
    }


def network(n: Network) -> dict[str, Any]:
    return {
        "id": n.id,
        "name": n.name,
        "ip_range": str(n.ip_range),
        "subnets": [
            {
                "type": s.type,
                "ip_range": str(s.ip_range),
                "network_zone": s.network_zone,
                "gateway": str(s.gateway),
                "vswitch_id": s.vswitch_id,
            }
            for s in n.subnets
        ],
        "routes": [
            {"destination": str(r.destination), "gateway": str(r.gateway)} for r in n.routes
        ],
        "servers": sorted(n.members),
        "load_balancers": [],
        "protection": {"delete": False},
        "labels": n.labels,
        "created": timestamp(n.created),
        "expose_routes_to_vswitch": n.expose_routes_to_vswitch,
    }


def firewall(project: Project, fw: Firewall) -> dict[str, Any]:
    applied: list[dict[str, Any]] = [
        {"type": "server", "server": {"id": sid}} for sid in fw.applied_servers
    ]
    for selector in fw.applied_selectors:
        from ..model.label_selectors import parse_selector

        parsed = parse_selector(selector)
        applied.append(
            {
                "type": "label_selector",
                "label_selector": {"selector": selector},
                "applied_to_resources": [
                    {"type": "server", "server": {"id": s.id}}
                    for s in project.servers.values()
                    if parsed.matches(s.labels)
                ],
            }
        )
    return {
        "id": fw.id,
        "name": fw.name,
        "labels": fw.labels,
        "created": timestamp(fw.created),
        "rules": [
            {
                "direction": r.direction,
                "protocol": r.protocol,
                "port": r.port,
                "source_ips": list(r.source_ips),
                "destination_ips": list(r.destination_ips),
                "description": r.description,
            }
            for r in fw.rules
        ],
        "applied_to": applied,
    }


def placement_group(g: PlacementGroup) -> dict[str, Any]:
    return {
        "id": g.id,
        "name": g.name,
        "type": g.type,
        "labels": g.labels,
        "created": timestamp(g.created),
        "servers": list(g.servers),
    }


def snapshot(s: Snapshot) -> dict[str, Any]:
    return {
        "id": s.id,
        "type": s.type,
        "status": s.status,
        "name": None,
        "description": s.description,
        "image_size": s.image_size,
        "disk_size": s.disk_size,
        "created": timestamp(s.created),
        "created_from": {"id": s.created_from[0], "name": s.created_from[1]}
        if s.created_from
        else None,
        "bound_to": s.bound_to,
        "os_flavor": s.os_flavor,
        "os_version": s.os_version,
        "architecture": s.architecture,
        "rapid_deploy": False,
        "protection": {"delete": False},
        "deprecated": None,
        "deprecation": None,
        "deleted": None,
        "labels": s.labels,
    }


def image(project: Project, image_id: int | None) -> dict[str, Any] | None:
    if image_id is None:
        return None
    snap = project.snapshots.get(image_id)
    if snap is not None:
        return snapshot(snap)
    system = static_catalog.find_system_image(image_id)
    return system.to_json() if system else None


def server(project: Project, s: Server) -> dict[str, Any]:
    server_type = static_catalog.find_server_type(s.server_type)
    location = static_catalog.find_location(s.location)
    datacenter = static_catalog.datacenter_for_location(s.location)
    assert server_type is not None and location is not None and datacenter is not None
    price = server_type.price_in(s.location)
    group = project.placement_groups.get(s.placement_group) if s.placement_group else None
    ipv4 = None
    if s.public_ipv4 is not None:
        ipv4 = {
            "id": s.public_ipv4_id,
            "ip": str(s.public_ipv4),
            "blocked": False,
            "dns_ptr": f"static.{s.public_ipv4}.clients.your-server.de",
        }
    ipv6 = None
    if s.public_ipv6_id is not None:
        net = ipaddress.IPv6Network(((0x20010DB8 << 96) | ((s.id & 0xFFFFFFFF) << 64), 64))
        ipv6 = {"id": s.public_ipv6_id, "ip": str(net), "blocked": False, "dns_ptr": []}
    return {
        "id": s.id,
        "name": s.name,
        "status": s.status,
        "created": timestamp(s.created),
        "public_net": {
            "ipv4": ipv4,
            "ipv6": ipv6,
            "floating_ips": [],
            "firewalls": [
                {"id": fw.id, "status": "applied"} for fw in firewalls.applied_firewalls(project, s)
            ],
        },
        "private_net": [
            {"network": nid, "ip": str(ip), "alias_ips": [], "mac_address": private_mac(s.id, nid)}
            for nid, ip in s.private_net.items()
        ],
        "server_type": server_type.to_json(),
        "datacenter": datacenter.to_json(),
        "location": location.to_json(),
        "image": image(project, s.image_id),
        "iso": None,
        "rescue_enabled": False,
        "locked": s.locked,
        "backup_window": None,
        "outgoing_traffic": 0,
        "ingoing_traffic": 0,
        "included_traffic": price.included_traffic if price else 0,
        "protection": {"delete": s.protection_delete, "rebuild": s.protection_rebuild},
        "labels": s.labels,
        "volumes": [],
        "load_balancers": [],
        "primary_disk_size": server_type.disk,
        "placement_group": placement_group(group) if group else None,
    }
