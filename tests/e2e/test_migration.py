"""Must show 5, for real: code written for dask-cloudprovider's HetznerCluster, with its
argument names, makes a scherbelberg cluster whose servers are what those names asked for."""

from __future__ import annotations

from typing import Any

from distributed import Client

from scherbelberg import HetznerCluster
from scherbelberg.hetzner.labels import cluster_selector
from tests.e2e.conftest import Target, name_of

# dask-cloudprovider's names (its HetznerCluster's and VMCluster's) and their values
CLOUDPROVIDER_ARGUMENTS: dict[str, Any] = {
    "server_type": "cx23",
    "image": "debian-12",
    "location": "fsn1",
    "n_workers": 1,
    "worker_options": {"nthreads": 1},
    "bootstrap": True,
    "security": True,
    "protocol": "tls",
}
# what those set among scherbelberg's own arguments (the target's must not say otherwise)
SET_BY_THEM = {"scheduler_server_type", "worker_server_type", "image", "location"}


def test_dask_cloudprovider_names_make_that_cluster(target: Target) -> None:
    kwargs = {k: v for k, v in target.cluster_kwargs.items() if k not in SET_BY_THEM}
    with (
        HetznerCluster(**CLOUDPROVIDER_ARGUMENTS, **kwargs) as cluster,
        Client(cluster) as client,
    ):
        servers = target.hcloud().servers.get_all(label_selector=cluster_selector(cluster.name))
        assert len(servers) == 2  # the scheduler and one worker
        for server in servers:
            # both, as server_type= means
            assert name_of(server.server_type, "server type") == "cx23", server.name
            assert name_of(server.location, "location") == "fsn1", server.name
            assert name_of(server.image, "image") == "debian-12", server.name
        client.wait_for_workers(1, timeout=60)
        (worker,) = client.scheduler_info()["workers"].values()
        assert worker["nthreads"] == 1  # worker_options={"nthreads": 1}
        assert sum(client.gather(client.map(lambda x: x * x, range(10)))) == 285
    assert target.leftovers() == []
