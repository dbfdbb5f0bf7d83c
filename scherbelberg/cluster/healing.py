"""Self-healing size: a worker whose server dies or stops answering is replaced by a new one.

Without this, distributed deletes a lost worker's server but keeps its spec, so the cluster
stays one worker short for good. `Healer.run()` compares the started workers with the
scheduler's identity every few seconds (no API requests). A worker missing for longer than
systemd needs to restart Dask (GRACE_SECONDS) is suspect; missing three grace periods, or
with its server off or gone (one API listing, only while there are suspects: Hetzner allows
3600 requests per hour and project), it is dead, and `HetznerCluster.replace_worker` puts a
new server (a new name) in its place and deletes the dead one.

`dead_workers` is the decision alone, over plain data, so it can be tested without a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from distributed.core import Status

from ..hetzner import infra, labels
from .nodes import HetznerNode, HetznerWorker

if TYPE_CHECKING:
    from ..hetzner.session import HetznerSession

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 2.0  # between looks at the scheduler's identity
GRACE_SECONDS = 5.0  # systemd restarts Dask after 2 s; distributed gives up a lost worker at 15
GONE = frozenset({"off", "stopping", "deleting", "deleted"})  # Hetzner's; "deleted": not listed


@dataclass(frozen=True)
class Watched:
    """A started worker: the names its Dask workers register with, and its server."""

    dask_names: frozenset[str]
    server_id: int


def dead_workers(
    watched: dict[str, Watched],
    live: set[str],
    states: dict[int, str] | None,
    missing: dict[str, float],
    now: float,
) -> list[str]:
    """The watched workers that are dead. `live`: Dask names the scheduler knows now;
    `states`: server id -> status from the API, or None when not asked; `missing`: since when
    each worker has been missing (kept between calls, updated here)."""
    for name in set(missing) - set(watched):
        del missing[name]
    dead = []
    for name, worker in sorted(watched.items()):
        present = bool(worker.dask_names & live)
        if present:
            missing.pop(name, None)
        else:
            missing.setdefault(name, now)
        server_gone = states is not None and states.get(worker.server_id, "deleted") in GONE
        if server_gone or (not present and now - missing[name] >= 3 * GRACE_SECONDS):
            dead.append(name)
    for name in dead:
        missing.pop(name, None)
    return dead


def addresses_of(identity: dict[str, Any], names: set[str]) -> list[str]:
    """The scheduler's addresses of the Dask workers with these names."""
    workers = identity.get("workers", {})
    return sorted(a for a, w in workers.items() if str(w.get("name")) in names)


class HealedCluster(Protocol):
    """What the healer needs of its cluster (`HetznerCluster` is one)."""

    name: str
    session: HetznerSession
    status: Status
    workers: dict[str, Any]  # SpecCluster's: started nodes by name
    worker_spec: dict[str, Any]
    nodes: MutableMapping[str, HetznerNode]  # also those still starting
    scheduler_comm: Any

    async def replace_worker(self, name: str) -> None: ...


class Healer:
    """Runs as a task while the cluster runs; the cluster cancels it when it closes."""

    def __init__(self, cluster: HealedCluster) -> None:
        self.cluster = cluster
        self.missing: dict[str, float] = {}
        self.unbacked_since: dict[str, float] = {}

    async def run(self) -> None:
        while self.cluster.status == Status.running:
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a missed round is no reason to stop healing
                log.debug("self-healing round of %s: %r", self.cluster.name, exc)
            await asyncio.sleep(INTERVAL_SECONDS)

    async def _round(self) -> None:
        cluster = self.cluster
        identity = await asyncio.wait_for(cluster.scheduler_comm.identity(), 30)
        live = {str(w.get("name")) for w in identity.get("workers", {}).values()}
        watched = self._watched()
        now = time.monotonic()
        suspect = any(
            not (w.dask_names & live) and now - self.missing.get(n, now) >= GRACE_SECONDS
            for n, w in watched.items()
        )
        states = await self._states() if suspect else None
        for name in dead_workers(watched, live, states, self.missing, now) + self._unbacked(now):
            if cluster.status != Status.running:
                return
            await cluster.replace_worker(name)

    def _unbacked(self, now: float) -> list[str]:
        """Wanted workers that no node stands for any more: distributed closes a worker it
        lost for `lost-worker-timeout` (15 s) and drops it from `cluster.workers`, but keeps
        its spec, so nothing would start it again. A spec may lack a node for a moment (a
        scale-up about to start it), hence the grace."""
        cluster = self.cluster
        unbacked = []
        for name in list(cluster.worker_spec):
            node = cluster.nodes.get(name)
            starting = node is not None and node.status in (Status.created, Status.starting)
            if name in cluster.workers or starting:
                self.unbacked_since.pop(name, None)
                continue
            if now - self.unbacked_since.setdefault(name, now) >= GRACE_SECONDS:
                unbacked.append(name)
                self.unbacked_since.pop(name, None)
        return unbacked

    def _watched(self) -> dict[str, Watched]:
        """Started workers the cluster still wants (none it is retiring or closing)."""
        found = {}
        for name, node in self.cluster.workers.items():
            if (
                isinstance(node, HetznerWorker)
                and name in self.cluster.worker_spec
                and "ready" in node.events
                and not node.retired.is_set()
                and not node.lost
                and node.server is not None
            ):
                found[name] = Watched(frozenset(node.dask_names), node.server.server_id)
        return found

    async def _states(self) -> dict[int, str]:
        """Every server of the cluster and its status: one request."""
        servers = await infra.list_labelled(
            self.cluster.session, "servers", labels.cluster_selector(self.cluster.name)
        )
        return {int(s["id"]): str(s.get("status")) for s in servers}
