"""The async API: `await Cluster.from_new(...)`, `await Cluster.from_existing(name=...)`,
`await c.get_client()`, `await c.destroy()`.

A thin layer over `HetznerCluster` for clusters that outlive the process that made them: the
cluster is not deleted when this process ends, only by `destroy()` (or `scherbelberg destroy`).
"""

from __future__ import annotations

from typing import Any

from distributed import Client

from .hetzner_cluster import HetznerCluster


class Cluster:
    def __init__(self, cluster: HetznerCluster) -> None:
        self._cluster = cluster

    @classmethod
    async def from_new(cls, **kwargs: Any) -> Cluster:
        """Create a cluster (arguments as for HetznerCluster) that persists until destroyed."""
        kwargs.setdefault("n_workers", 1)
        cluster = HetznerCluster(asynchronous=True, shutdown_on_close=False, **kwargs)
        await cluster
        return cls(cluster)

    @classmethod
    async def from_existing(cls, name: str, **kwargs: Any) -> Cluster:
        """Re-attach to the cluster `name` (its keys and certificates are in the state dir)."""
        cluster = HetznerCluster.from_existing(name, asynchronous=True, **kwargs)
        await cluster
        return cls(cluster)

    @property
    def name(self) -> str:
        return str(self._cluster.name)

    @property
    def cluster(self) -> HetznerCluster:
        """The underlying HetznerCluster (scale, adapt, dashboard_link, …)."""
        return self._cluster

    async def get_client(self) -> Client:
        """An asynchronous dask Client connected over mutual TLS."""
        return await Client(self._cluster, asynchronous=True)

    async def detach(self) -> None:
        """Let go of the cluster; it keeps running (and billing) until destroyed."""
        await self._cluster.close()

    async def destroy(self) -> None:
        """Delete every server and resource of the cluster, and its local state."""
        await self._cluster.destroy()
