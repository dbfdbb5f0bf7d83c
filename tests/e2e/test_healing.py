"""Issue 9, must show 7: a worker's machine killed during a computation: the result is right,
and within a boot plus a minute the cluster is back to its size on a new server, the dead
one deleted."""

from __future__ import annotations

import time

import pytest
from distributed import Client

from scherbelberg import HetznerCluster
from scherbelberg.cluster.healing import GRACE_SECONDS, Watched, dead_workers
from tests.e2e.conftest import Target


def test_the_decision() -> None:
    """Dead: its server is off or gone, or Dask missing for three grace periods."""
    watched = {
        "w-0": Watched(frozenset({"w-0"}), 1),
        "w-1": Watched(frozenset({"w-1"}), 2),
    }
    missing: dict[str, float] = {}
    assert dead_workers(watched, {"w-0", "w-1"}, {1: "running", 2: "running"}, missing, 0) == []
    assert dead_workers(watched, {"w-0", "w-1"}, {1: "running", 2: "off"}, missing, 1) == ["w-1"]
    assert dead_workers(watched, {"w-0"}, {1: "running"}, missing, 2) == ["w-1"]  # gone
    # missing from the scheduler only: a restart by systemd is not a death
    assert dead_workers(watched, {"w-0"}, None, missing, 10) == []
    assert dead_workers(watched, {"w-0"}, None, missing, 10 + GRACE_SECONDS) == []
    assert dead_workers(watched, {"w-0"}, None, missing, 10 + 3 * GRACE_SECONDS) == ["w-1"]
    assert dead_workers(watched, {"w-0", "w-1"}, None, missing, 100) == []
    assert missing == {}


@pytest.mark.timeout(900)
def test_a_killed_worker_is_replaced(target: Target) -> None:
    if target.control is None:
        pytest.skip("needs the local Hetzner's kill")
    with HetznerCluster(n_workers=2, **target.cluster_kwargs) as cluster, Client(cluster) as c:
        c.wait_for_workers(2, timeout=600)

        def slow(i: int) -> int:
            time.sleep(0.5)
            return i * i

        futures = c.map(slow, range(60), pure=False)
        time.sleep(3)
        victim = sorted(n for n in cluster.workers)[0]
        victim_id = cluster.workers[victim].server.server_id
        target.control.kill(victim_id)
        killed = time.monotonic()
        assert sum(c.gather(futures)) == sum(i * i for i in range(60))  # recovered

        deadline = killed + 60 + 120  # a boot here takes well under two minutes
        while True:
            names = {s.name for s in target.hcloud().servers.get_all()}
            workers = len(c.scheduler_info()["workers"])
            if victim not in names and workers == 2 and len(cluster.workers) == 2:
                break
            assert time.monotonic() < deadline, (names, workers, list(cluster.workers))
            time.sleep(3)
        assert victim not in cluster.workers and len(names) == 3  # scheduler + 2 workers
        assert c.submit(sum, [1, 2]).result() == 3
    assert target.leftovers() == []
