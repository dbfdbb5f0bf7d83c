"""scherbelberg: Dask clusters on the Hetzner Cloud, and a local Hetzner to try them on.

    from scherbelberg import HetznerCluster
    cluster = HetznerCluster(n_workers=4)

`HetznerCluster` and the async `Cluster` are imported on first use, so that the command line
starts without loading dask, distributed and hcloud.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cluster.versions import ignore_harmless_version_warnings
from .version import __version__

__all__ = ["Cluster", "HetznerCluster", "__version__"]

# also for a Client made from `scherbelberg client`'s snippet in a process that imported us
ignore_harmless_version_warnings()

if TYPE_CHECKING:
    from .cluster.async_api import Cluster
    from .cluster.hetzner_cluster import HetznerCluster


def __getattr__(name: str) -> Any:
    if name == "HetznerCluster":
        from .cluster.hetzner_cluster import HetznerCluster

        return HetznerCluster
    if name == "Cluster":
        from .cluster.async_api import Cluster

        return Cluster
    raise AttributeError(f"module 'scherbelberg' has no attribute {name!r}")
