"""What a Hetzner project holds of scherbelberg: clusters, their nodes, and orphans.

Why: a cluster outlives the process that made it, and a crashed process leaves resources
behind. Everything scherbelberg makes carries the labels `scherbelberg/managed=true` and
`scherbelberg/cluster=<name>`, so the API alone says which clusters exist, what their servers
cost so far, and which resources belong to no live cluster (one without a scheduler server).
Local state only adds what the API cannot know (is this cluster usable from here?).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ..errors import ConfigError
from ..hetzner import infra, labels, pricing
from ..hetzner.servers import ServerRecord
from ..hetzner.session import HetznerSession
from . import lease
from .lifetime import Lifetime
from .state import ClusterState

# servers first: firewalls and networks in use cannot be deleted before them
KINDS = ("servers", *infra.RESOURCE_KINDS)
UNLABELLED = "?"  # managed resources without a cluster label


@dataclass
class Resource:
    """One labelled resource of any kind."""

    kind: str  # servers | firewalls | networks | placement_groups | ssh_keys
    id: int
    name: str
    cluster: str
    role: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def what(self) -> str:
        return f"{self.kind.rstrip('s').replace('_', ' ')} {self.name}"


@dataclass
class Node:
    """One server of a cluster, with what it costs."""

    name: str  # as the CLI shows it: `scheduler`, `worker-0`, … (server name minus cluster-)
    server_name: str
    server_id: int
    role: str
    server_type: str
    location: str
    public_ip: str | None
    private_ip: str | None
    status: str
    created: float  # epoch seconds
    price_hourly: float | None  # gross EUR: the server and its primary IPv4 address
    price_monthly: float | None
    ipv4_hourly: float = 0.0  # the address's share of the two prices above
    ipv4_monthly: float = 0.0

    def add_ipv4(self, price: pricing.Ipv4Price | None) -> None:
        """Count the server's primary IPv4 address into its price."""
        if price is None or self.public_ip is None:
            return
        self.ipv4_hourly, self.ipv4_monthly = price.hourly, price.monthly
        if self.price_hourly is not None:
            self.price_hourly += price.hourly
        if self.price_monthly is not None:
            self.price_monthly += price.monthly

    def age_hours(self, now: float | None = None) -> float:
        return max(0.0, ((now if now is not None else time.time()) - self.created) / 3600)

    def cost_so_far(self, now: float | None = None) -> float | None:
        if self.price_hourly is None:
            return None
        # Hetzner caps the server's month and the address's month each at its own price
        hours = self.age_hours(now)
        server_monthly = (
            None if self.price_monthly is None else self.price_monthly - self.ipv4_monthly
        )
        server = cost_so_far(hours, self.price_hourly - self.ipv4_hourly, server_monthly)
        return server + cost_so_far(hours, self.ipv4_hourly, self.ipv4_monthly)

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        return {
            **asdict(self),
            "age_seconds": round(self.age_hours(now) * 3600),
            "cost_so_far": _round(self.cost_so_far(now)),
        }


@dataclass
class ClusterInfo:
    name: str
    nodes: list[Node] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)  # everything, servers included
    state: ClusterState | None = None  # local state, if this machine has it

    @property
    def live(self) -> bool:
        """It has a scheduler server; without one it is the leftover of a crash."""
        return self.name != UNLABELLED and any(n.role == "scheduler" for n in self.nodes)

    def status(self, now: float | None = None) -> str:
        """`creating` (a create holds its lease), `ready`, `incomplete` (abandoned or broken:
        `cleanup` deletes it) or `expiring` (ready, with a TTL)."""
        if self.name == UNLABELLED:
            return "incomplete"
        found = lease.status([r.labels for r in self.resources], self.live, now)
        if found == "ready" and self.lifetime.expires is not None:
            return "expiring"
        return found

    @property
    def created(self) -> float | None:
        """When its first server was made (epoch seconds), else when the local state was."""
        if self.nodes:
            return min(n.created for n in self.nodes)
        return self.state.created if self.state is not None else None

    @property
    def lifetime(self) -> Lifetime:
        """TTL and idle timeout, from the labels (the earliest deadline any resource has)."""
        found = [Lifetime.from_labels(r.labels) for r in self.resources]
        deadlines = [f.expires for f in found if f.expires is not None]
        timeouts = [f.idle_timeout for f in found if f.idle_timeout is not None]
        reaper = "node" if any(f.reaper == "node" for f in found) else "client"
        return Lifetime(min(deadlines, default=None), min(timeouts, default=None), reaper)

    @property
    def location(self) -> str | None:
        return self.nodes[0].location if self.nodes else self.state.location if self.state else None

    @property
    def price_hourly(self) -> float | None:
        prices = [n.price_hourly for n in self.nodes]
        return None if None in prices else sum(p or 0.0 for p in prices)

    def cost_so_far(self, now: float | None = None) -> float | None:
        costs = [n.cost_so_far(now) for n in self.nodes]
        return None if None in costs else sum(c or 0.0 for c in costs)

    def node(self, name: str) -> Node:
        """A node by its short name (`scheduler`, `worker-0`) or its server name."""
        for node in self.nodes:
            if name in (node.name, node.server_name):
                return node
        known = ", ".join(n.name for n in self.nodes) or "none"
        raise ConfigError(f"cluster {self.name!r} has no node {name!r} (nodes: {known})")

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        return {
            "name": self.name,
            "live": self.live,
            "status": self.status(now),
            "created": self.created,
            "expires": self.lifetime.expires,
            "idle_timeout": self.lifetime.idle_timeout,
            "location": self.location,
            "local_state": self.state is not None,
            "price_hourly": _round(self.price_hourly),
            "cost_so_far": _round(self.cost_so_far(now)),
            "nodes": [n.as_dict(now) for n in self.nodes],
            "resources": [asdict(r) for r in self.resources],
        }


def cost_so_far(age_hours: float, hourly: float, monthly: float | None) -> float:
    """Hetzner bills every started hour, up to the monthly price."""
    billed = math.ceil(age_hours) * hourly
    return min(billed, monthly) if monthly is not None else billed


def short_node_name(cluster: str, server_name: str) -> str:
    prefix = f"{cluster}-"
    return server_name[len(prefix) :] if server_name.startswith(prefix) else server_name


async def clusters(session: HetznerSession, name: str | None = None) -> list[ClusterInfo]:
    """Every cluster in the project (or just `name`), found by label, with local state where
    this machine has it. Sorted by name; orphans of a crash are included (`live` is False)."""
    selector = labels.cluster_selector(name) if name else labels.MANAGED
    by_name: dict[str, ClusterInfo] = {}
    for kind in KINDS:
        for item in await infra.list_labelled(session, kind, selector):
            item_labels = item.get("labels") or {}
            cluster = item_labels.get(labels.CLUSTER) or UNLABELLED
            info = by_name.setdefault(cluster, ClusterInfo(cluster))
            info.resources.append(
                Resource(
                    kind=kind,
                    id=int(item["id"]),
                    name=str(item.get("name")),
                    cluster=cluster,
                    role=str(item_labels.get(labels.ROLE, "")),
                    labels=dict(item_labels),
                )
            )
            if kind == "servers":
                info.nodes.append(_node(cluster, item))
    if any(info.nodes for info in by_name.values()):
        # Hetzner bills each server's primary IPv4 address per hour too (one request)
        ipv4 = await pricing.ipv4_prices(session)
        for info in by_name.values():
            for node in info.nodes:
                node.add_ipv4(ipv4.get(node.location))
    local = set(ClusterState.list_names())
    for info in by_name.values():
        info.nodes.sort(key=_node_order)
        if info.name in local:
            info.state = _load_state(info.name)
    return [by_name[n] for n in sorted(by_name)]


async def cluster(session: HetznerSession, name: str) -> ClusterInfo:
    """One cluster by name; an error if the project holds nothing of it."""
    found = [c for c in await clusters(session, name) if c.name == name]
    if not found:
        raise ConfigError(f"no cluster named {name!r} in this Hetzner project")
    return found[0]


def orphans(found: list[ClusterInfo], now: float | None = None) -> list[Resource]:
    """Resources of incomplete clusters: a create abandoned (its lease ran out) or a cluster
    that lost its scheduler. Never those of a create in progress."""
    return [r for c in found if c.status(now) == "incomplete" for r in c.resources]


def stale_states(found: list[ClusterInfo], endpoint: str) -> list[ClusterState]:
    """Local state of clusters on `endpoint` of which the project holds nothing any more."""
    names = {c.name for c in found}
    stale = []
    for name in ClusterState.list_names():
        state = _load_state(name)
        if state is not None and state.endpoint == endpoint and name not in names:
            stale.append(state)
    return stale


async def delete(session: HetznerSession, resources: list[Resource], *, deadline: float) -> None:
    """Delete exactly these resources (by id: nothing made since the listing is touched)."""
    servers = [r.id for r in resources if r.kind == "servers"]
    await infra.delete_servers(session, servers, deadline=deadline, doing="deleting orphans")
    for kind in infra.RESOURCE_KINDS:
        for resource in (r for r in resources if r.kind == kind):
            await infra.delete_known(session, resource.cluster, _only(kind, resource.id))


async def catalog(session: HetznerSession) -> dict[str, list[dict[str, Any]]]:
    """Locations and server types (cores, memory, architecture, prices per location, where
    each is offered and where it can be ordered right now)."""
    from ..hetzner import capacity

    known = await capacity.load(session)
    locations = await infra.list_all(session, "locations")
    types = []
    for data in known.types.values():
        deprecation = data.get("deprecation") or None
        types.append(
            {
                "name": data["name"],
                "description": data.get("description"),
                "cores": int(data["cores"]),
                "memory_gb": float(data["memory"]),
                "disk_gb": int(data["disk"]),
                "architecture": data["architecture"],
                "cpu_type": data.get("cpu_type"),
                "deprecated": bool(deprecation or data.get("deprecated")),
                "unavailable_after": (deprecation or {}).get("unavailable_after"),
                "locations": [loc["name"] for loc in data.get("locations", [])],
                "orderable_in": sorted(
                    loc for name, loc in known.orderable if name == data["name"]
                ),
                "prices": {
                    p["location"]: {
                        "hourly": float(p["price_hourly"]["gross"]),
                        "monthly": float(p["price_monthly"]["gross"]),
                    }
                    for p in data.get("prices", [])
                },
            }
        )
    return {
        "locations": [
            {
                "name": loc["name"],
                "city": loc.get("city"),
                "country": loc.get("country"),
                "network_zone": loc.get("network_zone"),
            }
            for loc in locations
        ],
        "server_types": types,
    }


# -- helpers ----------------------------------------------------------------------------------


def _node(cluster: str, server: dict[str, Any]) -> Node:
    server_type = server.get("server_type") or {}
    location = (server.get("location") or {}).get("name") or (
        (server.get("datacenter") or {}).get("location") or {}
    ).get("name", "")
    price = next((p for p in server_type.get("prices", []) if p.get("location") == location), None)
    record = ServerRecord.from_api(server)
    return Node(
        name=short_node_name(cluster, server["name"]),
        server_name=server["name"],
        server_id=record.server_id,
        role=record.role,
        server_type=str(server_type.get("name", "")),
        location=str(location),
        public_ip=record.public_ip or None,
        private_ip=record.private_ip,
        status=str(server.get("status", "")),
        created=_epoch(server.get("created")),
        price_hourly=float(price["price_hourly"]["gross"]) if price else None,
        price_monthly=float(price["price_monthly"]["gross"]) if price else None,
    )


def _node_order(node: Node) -> tuple[int, int, str]:
    if node.role == "scheduler":
        return (0, 0, node.name)
    tail = node.name.rsplit("-", 1)[-1]
    return (1, int(tail) if tail.isdigit() else 0, node.name)


def _epoch(created: str | None) -> float:
    if not created:
        return time.time()
    return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()


def _load_state(name: str) -> ClusterState | None:
    try:
        return ClusterState.load(name)
    except (LookupError, ValueError):
        return None


def _only(kind: str, resource_id: int) -> infra.Infra:
    known = infra.Infra()
    if kind == "firewalls":
        known.firewall_id = resource_id
    elif kind == "networks":
        known.network_id = resource_id
    elif kind == "placement_groups":
        known.placement_group_ids = [resource_id]
    else:
        known.ssh_key_id = resource_id
    return known


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, pricing.DIGITS)
