"""Must show 1: HetznerCluster(n_workers=2) + Client computes dask.array and dask.dataframe
right, and close() leaves nothing in the project."""

from __future__ import annotations

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client

from scherbelberg import HetznerCluster
from tests.e2e.conftest import Target


def test_two_workers_compute_and_close_leaves_nothing(target: Target) -> None:
    with HetznerCluster(n_workers=2, **target.cluster_kwargs) as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        # each node reported its way up (progress displays read these)
        for node in [cluster.scheduler, *cluster.workers.values()]:
            stages = set(node.events)
            assert {"requested", "created", "booted", "environment", "ready"} <= stages
            assert node.events["requested"] < node.events["booted"] < node.events["ready"]
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=60)
            workers = client.scheduler_info()["workers"].values()
            names = sorted(w["name"] for w in workers)
            assert names == sorted(cluster.worker_spec)  # Dask name == spec name == server

            x = da.arange(1_000_000, chunks=100_000)
            assert client.compute((x * 2).sum()).result() == 999_999_000_000

            frame = pd.DataFrame({"key": np.arange(10_000) % 7, "value": np.arange(10_000)})
            ddf = dd.from_pandas(frame, npartitions=8)
            got = client.compute(ddf.groupby("key")["value"].sum()).result().sort_index()
            expected = frame.groupby("key")["value"].sum().sort_index()
            pd.testing.assert_series_equal(got, expected)

            # the work really ran on both servers, not on the client
            who_ran = client.run(lambda: __import__("socket").gethostname())
            assert sorted(who_ran.values()) == names
        servers = {s.name for s in target.hcloud().servers.get_all()}
        assert servers == {f"{cluster.name}-scheduler", *names}
    assert target.leftovers() == []
    assert target.hcloud().servers.get_all() == []
