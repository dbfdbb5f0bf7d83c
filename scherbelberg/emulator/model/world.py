"""The whole local Hetzner: projects (one per token), shared id counter, machines, faults.

Everything that is not one project's own state lives here, so the resource modules only take a
`World` and a `Project` and never reach for globals.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from dataclasses import dataclass, field

from scherbelberg.errors import EmulatorInputError

from ..faults import Faults
from ..latency import INSTANT, LatencyProfile
from ..machines.base import MachineBackend
from .actions import Action, ActionRunner
from .errors import ApiError
from .records import Firewall, Network, PlacementGroup, Server, Snapshot, SshKey


@dataclass
class Limits:
    """Per-project resource limits, like the ones Hetzner sets for a new project."""

    servers: int = 64
    ssh_keys: int = 100
    networks: int = 50
    firewalls: int = 50
    placement_groups: int = 50
    snapshots: int = 50


@dataclass
class Project:
    id: int
    token: str
    name: str
    limits: Limits = field(default_factory=Limits)
    requests_per_hour: int = 3600  # Hetzner's rate limit; tests that fuzz the API raise it
    servers: dict[int, Server] = field(default_factory=dict)
    ssh_keys: dict[int, SshKey] = field(default_factory=dict)
    networks: dict[int, Network] = field(default_factory=dict)
    firewalls: dict[int, Firewall] = field(default_factory=dict)
    placement_groups: dict[int, PlacementGroup] = field(default_factory=dict)
    snapshots: dict[int, Snapshot] = field(default_factory=dict)
    actions: dict[int, Action] = field(default_factory=dict)
    # servers deleted but whose machines are still being torn down
    deleting: set[int] = field(default_factory=set)
    # what a deleted server was attached to answers resource_in_use on delete while the
    # server's delete runs (held_by: (kind, id) -> server ids) and until a monotonic time
    # `Faults.release_delay` seconds after it ended (held_until)
    held_by: dict[tuple[str, int], set[int]] = field(default_factory=dict)
    held_until: dict[tuple[str, int], float] = field(default_factory=dict)

    def check_limit(self, kind: str, current: int) -> None:
        if current >= getattr(self.limits, kind):
            raise ApiError(
                "resource_limit_exceeded",
                f"{kind} limit of {getattr(self.limits, kind)} reached for this project",
                {"limits": [{"name": f"{kind}_limit"}]},
            )


class World:
    def __init__(
        self,
        backend: MachineBackend,
        latency: LatencyProfile = INSTANT,
        faults: Faults | None = None,
    ) -> None:
        self.backend = backend
        self.latency = latency
        self.faults = faults or Faults()
        self.runner = ActionRunner()
        self.projects: dict[str, Project] = {}
        self._next_id = 100_000  # system images keep their own (larger) ids
        self._used_public: set[ipaddress.IPv4Address] = set()
        # server id -> project, for the machine exit callback
        self._server_project: dict[int, Project] = {}
        backend.set_exit_callback(self._machine_exited)

    # -- ids, projects, time ------------------------------------------------------------------
    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    @staticmethod
    def now() -> float:
        return time.time()

    def add_project(self, name: str | None = None, token: str | None = None) -> Project:
        token = token or secrets.token_hex(32)  # 64 characters, like a real Hetzner token
        if token in self.projects:
            raise EmulatorInputError("a project with this token exists")
        project = Project(
            id=self.new_id(), token=token, name=name or f"project-{len(self.projects) + 1}"
        )
        self.projects[token] = project
        return project

    def project_for(self, token: str) -> Project | None:
        return self.projects.get(token)

    # -- actions ------------------------------------------------------------------------------
    def new_action(
        self, project: Project, command: str, resources: list[tuple[int, str]], duration: float
    ) -> Action:
        action = Action(
            id=self.new_id(),
            project_id=project.id,
            command=command,
            resources=resources,
            duration=duration,
        )
        project.actions[action.id] = action
        for rid, rtype in resources:
            if rtype == "server" and rid in project.servers:
                project.servers[rid].action_ids.append(action.id)
        return action

    # -- public addresses ---------------------------------------------------------------------
    def allocate_public_ipv4(self) -> ipaddress.IPv4Address:
        reserved = self.backend.reserved_public
        for address in self.backend.public_range.hosts():
            if address not in reserved and address not in self._used_public:
                self._used_public.add(address)
                return address
        raise ApiError("resource_unavailable", "no public IPv4 address left in this location")

    def release_public_ipv4(self, address: ipaddress.IPv4Address | None) -> None:
        if address is not None:
            self._used_public.discard(address)

    # -- machines -----------------------------------------------------------------------------
    def track_server(self, project: Project, server_id: int) -> None:
        self._server_project[server_id] = project

    def untrack_server(self, server_id: int) -> None:
        self._server_project.pop(server_id, None)

    def _machine_exited(self, server_id: int, code: int) -> None:
        """A machine stopped on its own (guest poweroff, crash, killed host): server is `off`."""
        project = self._server_project.get(server_id)
        if project is None:
            return
        server = project.servers.get(server_id)
        if server is not None and server.status in ("running", "starting", "stopping"):
            server.status = "off"

    async def close(self) -> None:
        await self.runner.cancel_all()


def check_released(project: Project, kind: str, resource_id: int, what: str) -> None:
    """422 resource_in_use while a server that was attached to it is still being let go."""
    key = (kind, resource_id)
    if project.held_by.get(key) or project.held_until.get(key, 0.0) > time.monotonic():
        raise ApiError("resource_in_use", f"{what} is still in use by a deleted server")
    project.held_by.pop(key, None)
    project.held_until.pop(key, None)
