"""The state of one project's resources: plain objects, no HTTP, no machines.

Field names follow the Hetzner API so that rendering is a direct mapping.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .label_selectors import parse_selector


@dataclass
class SshKey:
    id: int
    name: str
    public_key: str
    fingerprint: str
    labels: dict[str, str]
    created: float


@dataclass
class Subnet:
    type: str  # cloud | server | vswitch
    ip_range: ipaddress.IPv4Network
    network_zone: str
    gateway: ipaddress.IPv4Address
    vswitch_id: int | None = None


@dataclass
class Route:
    destination: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address


@dataclass
class Network:
    id: int
    name: str
    ip_range: ipaddress.IPv4Network
    labels: dict[str, str]
    created: float
    subnets: list[Subnet] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    expose_routes_to_vswitch: bool = False
    # server id -> its address in this network
    members: dict[int, ipaddress.IPv4Address] = field(default_factory=dict)

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """Hetzner reserves the network's first address for its router."""
        return self.ip_range.network_address + 1


@dataclass(frozen=True)
class FirewallRuleSpec:
    """A rule as the API shows it (strings as given), validated on the way in."""

    direction: str
    protocol: str
    port: str | None
    source_ips: tuple[str, ...]
    destination_ips: tuple[str, ...]
    description: str | None


@dataclass
class Firewall:
    id: int
    name: str
    labels: dict[str, str]
    created: float
    rules: list[FirewallRuleSpec] = field(default_factory=list)
    applied_servers: list[int] = field(default_factory=list)
    applied_selectors: list[str] = field(default_factory=list)

    def applies_to(self, server: Server) -> bool:
        if server.id in self.applied_servers:
            return True
        return any(parse_selector(s).matches(server.labels) for s in self.applied_selectors)


@dataclass
class PlacementGroup:
    id: int
    name: str
    type: str
    labels: dict[str, str]
    created: float
    servers: list[int] = field(default_factory=list)


@dataclass
class Snapshot:
    """An image made from a server (`create_image`); system images live in the catalog."""

    id: int
    description: str
    type: str  # snapshot | backup
    status: str  # creating | available
    labels: dict[str, str]
    created: float
    architecture: str
    disk_size: float
    image_size: float | None
    created_from: tuple[int, str] | None  # (server id, server name)
    os_flavor: str
    os_version: str | None
    bound_to: int | None = None


@dataclass
class Server:
    id: int
    name: str
    status: str
    created: float
    server_type: str  # name, see catalog
    location: str  # name, see catalog
    image_id: int | None
    labels: dict[str, str]
    user_data: str | None
    ssh_key_ids: list[int]
    public_ipv4: ipaddress.IPv4Address | None
    public_ipv4_id: int | None
    public_ipv6_id: int | None
    placement_group: int | None = None
    locked: bool = False
    # network id -> address (mirrors Network.members, kept for ordering)
    private_net: dict[int, ipaddress.IPv4Address] = field(default_factory=dict)
    protection_delete: bool = False
    protection_rebuild: bool = False
    action_ids: list[int] = field(default_factory=list)
