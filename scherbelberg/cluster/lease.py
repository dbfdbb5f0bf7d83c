"""The creation lease: how `ls` and `cleanup` tell a create in progress from a dead one.

Why: a `create` killed by SIGKILL leaves servers, a network, a firewall, a key and placement
groups that nothing would ever delete, while a create that is merely running looks the same
for a minute. So every resource is made with the label `scherbelberg/lease=<deadline>` (Unix
seconds), the creating process keeps pushing the deadline on the cluster's SSH key (its first
resource; one request per renewal), and once the cluster is complete it marks the key
`scherbelberg/ready=true`. A cluster that is not ready and whose newest lease has run out was
abandoned: `cleanup` deletes it. One that is ready is complete, whatever its servers say.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable, Mapping

from ..hetzner import labels
from ..hetzner.session import HetznerSession

LEASE = f"{labels.PREFIX}/lease"  # Unix seconds until which a create holds the cluster
READY = f"{labels.PREFIX}/ready"  # "true": the cluster was made completely

log = logging.getLogger(__name__)


def lease_labels(seconds: float, now: float | None = None) -> dict[str, str]:
    return {LEASE: str(math.ceil((now or time.time()) + seconds))}


def status(
    found: Iterable[Mapping[str, str]], has_scheduler: bool, now: float | None = None
) -> str:
    """`ready`, `creating` (a live lease), or `incomplete` (abandoned, or broken: ready but
    without a scheduler). Clusters made before leases existed count as ready while they have
    a scheduler."""
    found = list(found)
    if any(f.get(READY) == "true" for f in found):
        return "ready" if has_scheduler else "incomplete"
    deadlines = []
    for item in found:
        try:
            deadlines.append(float(item[LEASE]))
        except (KeyError, ValueError):
            continue
    if not deadlines:
        return "ready" if has_scheduler else "incomplete"
    return "creating" if max(deadlines) > (now or time.time()) else "incomplete"


class Lease:
    """Held by the process that creates a cluster, from its first resource until ready."""

    def __init__(self, session: HetznerSession, seconds: float) -> None:
        self.session = session
        self.seconds = seconds
        self._task: asyncio.Task[None] | None = None

    def labels(self) -> dict[str, str]:
        return lease_labels(self.seconds)

    def hold(self, ssh_key_id: int, resource_labels: Mapping[str, str]) -> None:
        """Renew the deadline every quarter lease, until `release` or `ready`."""
        self._task = asyncio.ensure_future(self._renew(ssh_key_id, dict(resource_labels)))

    async def _renew(self, ssh_key_id: int, resource_labels: dict[str, str]) -> None:
        while True:
            await asyncio.sleep(self.seconds / 4)
            try:
                await self._put(ssh_key_id, {**resource_labels, **self.labels()})
            except Exception as exc:  # the next renewal may get through; the lease is long
                log.debug("could not renew the creation lease: %s", exc)

    def release(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def ready(self, ssh_key_id: int, resource_labels: Mapping[str, str]) -> None:
        """The cluster is complete: no lease any more, and marked ready (one request)."""
        self.release()
        marked = {k: v for k, v in resource_labels.items() if k != LEASE}
        await self._put(ssh_key_id, {**marked, READY: "true"})

    async def _put(self, ssh_key_id: int, new_labels: dict[str, str]) -> None:
        await self.session.request(
            "renewing the creation lease",
            "PUT",
            f"/ssh_keys/{ssh_key_id}",
            json={"labels": new_labels},
        )
