"""Must show 2 and 3: scale down retires exactly the workers the scheduler chose, their keys
move first and their servers are deleted; adapt grows under load, never past its maximum, and
shrinks back."""

from __future__ import annotations

import logging
import threading
import time

import dask.array as da
import numpy as np
from distributed import Client, wait

from scherbelberg import HetznerCluster
from tests.e2e.conftest import Target, name_of


def server_names(target: Target) -> set[str]:
    return {name_of(s, "server") for s in target.hcloud().servers.get_all()}


def test_scale_up_then_down_keeps_every_key(target: Target) -> None:
    with HetznerCluster(n_workers=1, **target.cluster_kwargs) as cluster, Client(cluster) as client:
        cluster.scale(3)
        client.wait_for_workers(3, timeout=600)
        # scattered data has no graph to recompute it from: if a key were lost on the way
        # down, gathering it would fail instead of silently recomputing
        pieces = [np.full(100_000, i, dtype=np.int64) for i in range(30)]
        scattered = client.scatter(pieces)
        wait(scattered)
        holders = {w for ws in client.who_has(scattered).values() for w in ws}
        assert len(holders) == 3
        # and a persisted array as dask users hold it
        x = da.arange(3_000_000, chunks=100_000).persist()
        wait(x)

        before = set(client.scheduler_info()["workers"])
        cluster.scale(1)
        deadline = time.monotonic() + 300
        while len(client.scheduler_info()["workers"]) != 1 or len(cluster.workers) != 1:
            assert time.monotonic() < deadline, "scale(1) did not finish"
            time.sleep(0.5)
        remaining = client.scheduler_info()["workers"]
        (survivor_address,) = remaining
        survivor = remaining[survivor_address]["name"]
        assert survivor_address in before

        # no key was lost: everything now lives on the survivor, byte for byte
        assert {w for ws in client.who_has(scattered).values() for w in ws} == {survivor_address}
        assert {w for ws in client.who_has(x).values() for w in ws} == {survivor_address}
        for piece, got in zip(pieces, client.gather(scattered), strict=True):
            np.testing.assert_array_equal(got, piece)
        assert int(x.sum().compute()) == 3_000_000 * 2_999_999 // 2
        # the servers deleted are exactly the workers retired
        assert server_names(target) == {f"{cluster.name}-scheduler", survivor}
        assert set(cluster.worker_spec) == {survivor}


def test_adapt_grows_under_burst_and_shrinks_back(target: Target) -> None:
    with HetznerCluster(n_workers=1, **target.cluster_kwargs) as cluster, Client(cluster) as client:
        client.wait_for_workers(1, timeout=600)
        cluster.adapt(minimum=1, maximum=3, interval="500ms", wait_count=4, target_duration="1s")
        seen: list[int] = []
        stop = threading.Event()

        def watch() -> None:  # how many servers exist, sampled all along
            while not stop.is_set():
                workers = [n for n in server_names(target) if "-worker-" in n]
                seen.append(len(workers))
                stop.wait(1.0)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:

            def slow(i: int) -> int:
                time.sleep(1.0)
                return i

            futures = client.map(slow, range(400), pure=False)
            deadline = time.monotonic() + 600
            while len(client.scheduler_info()["workers"]) < 2:
                assert time.monotonic() < deadline, "adapt never grew the cluster"
                time.sleep(1)
            assert sum(client.gather(futures)) == sum(range(400))
            deadline = time.monotonic() + 300
            while len(cluster.worker_spec) > 1 or len(server_names(target)) > 2:
                assert time.monotonic() < deadline, "adapt never shrank back"
                time.sleep(1)
        finally:
            stop.set()
            watcher.join()
        assert max(seen) >= 2, seen
        assert max(seen) <= 3, seen
        assert len(client.scheduler_info()["workers"]) == 1


class _Errors(logging.Handler):
    """Collects every ERROR record of the process's loggers during a test."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_scale_down_right_after_scale_up_does_not_wait(target: Target) -> None:
    """Issue 7, must show 3: the habit `scale(3)`, `wait_for_workers(3)`, `scale(1)` returns
    at once, logs no error and loses no key; `scale(3)` then at once `scale(1)` cancels the
    servers not yet needed instead of finishing them first."""
    errors = _Errors()
    loggers = [logging.getLogger(n) for n in ("", "distributed", "scherbelberg", "tornado")]
    for logger in loggers:
        logger.addHandler(errors)
    try:
        with (
            HetznerCluster(n_workers=1, **target.cluster_kwargs) as cluster,
            Client(cluster) as client,
        ):
            pieces = [np.full(10_000, i, dtype=np.int64) for i in range(12)]
            scattered = client.scatter(pieces)
            wait(scattered)

            cluster.scale(3)
            client.wait_for_workers(3, timeout=600)
            started = time.monotonic()
            cluster.scale(1)
            assert time.monotonic() - started < 20, "scale(1) waited for retiring workers"
            for piece, got in zip(pieces, client.gather(scattered), strict=True):
                np.testing.assert_array_equal(got, piece)

            cluster.scale(3)
            started = time.monotonic()
            cluster.scale(1)
            assert time.monotonic() - started < 20, "scale(1) finished servers it then deleted"
            deadline = time.monotonic() + 60
            while len(cluster.workers) != 1:
                assert time.monotonic() < deadline, cluster.workers
                time.sleep(0.5)
            workers = [n for n in server_names(target) if "-worker-" in n]
            assert len(workers) <= 1, workers
            assert len(client.scheduler_info()["workers"]) == 1
            for piece, got in zip(pieces, client.gather(scattered), strict=True):
                np.testing.assert_array_equal(got, piece)
    finally:
        for logger in loggers:
            logger.removeHandler(errors)
    assert [r.getMessage() for r in errors.records] == []
