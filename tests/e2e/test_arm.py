"""Must show 4: a cluster with an x86 scheduler and one `cax` (arm64) worker computes, and the
worker really is aarch64 (on the local Hetzner: an arm64 Debian under qemu-aarch64)."""

from __future__ import annotations

import platform

import dask.array as da
import pytest
from distributed import Client

from scherbelberg import HetznerCluster
from tests.e2e.conftest import Target


# The arm worker's bootstrap runs pip and Python under qemu user-mode emulation on the local
# Hetzner, several times slower than native (docs/benchmarks.md "ARM"): a deadline above the
# suite's 900 s per test, and a bootstrap deadline above the default 900 s per node.
@pytest.mark.timeout(1800)
def test_x86_scheduler_with_an_arm_worker_computes(target: Target) -> None:
    cluster = HetznerCluster(
        n_workers=1,
        scheduler_server_type="cx23",
        worker_server_type="cax11",
        timeouts={"bootstrap": 1500},
        **target.cluster_kwargs,
    )
    with cluster, Client(cluster) as client:
        client.wait_for_workers(1, timeout=60)
        machines = client.run(platform.machine)
        assert list(machines.values()) == ["aarch64"]
        assert client.run_on_scheduler(platform.machine) == "x86_64"
        x = da.arange(1_000_000, chunks=100_000)
        assert client.compute((x * 2).sum()).result() == 999_999_000_000
        for node in [cluster.scheduler, *cluster.workers.values()]:  # docs/benchmarks.md "ARM"
            start = node.events["requested"]
            stages = {k: round(t - start) for k, t in node.events.items() if k != "requested"}
            print(f"{node.name}: seconds after its create request: {stages}")
    assert target.leftovers() == []
