"""Issue 9, must show 5: on a rough API (--chaos: low-rate 5xx of every kind, 429s, slow
answers, reproducible by seed) a whole lifecycle either succeeds or fails with one clear
error, never hangs, and leaves nothing; so do the CLI's create and destroy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from distributed import Client

from scherbelberg import HetznerCluster
from scherbelberg.errors import ScherbelbergError
from tests.cli.conftest import cli
from tests.e2e.conftest import Target


@pytest.fixture
def control(target: Target) -> Iterator[Any]:
    if target.control is None:
        pytest.skip("needs the local Hetzner's chaos")
    yield target.control
    target.control.clear_faults()


def wait_empty(target: Target, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while target.leftovers():
        assert time.monotonic() < deadline, target.leftovers()
        time.sleep(2)


@pytest.mark.timeout(900)  # "never hangs": the whole lifecycle, with every retry, inside this
@pytest.mark.parametrize("seed", [1, 2])
def test_a_lifecycle_on_a_rough_api(target: Target, control: Any, seed: int) -> None:
    control.set_faults({"chaos": True, "seed": seed})
    try:
        with (
            HetznerCluster(n_workers=2, **target.cluster_kwargs) as cluster,
            Client(cluster) as client,
        ):
            assert client.submit(sum, [1, 2]).result() == 3
            cluster.scale(3)
            client.wait_for_workers(3, timeout=600)
            cluster.scale(1)
            assert len(client.scheduler_info()["workers"]) == 1
    except ScherbelbergError as exc:  # allowed: one clear line, and nothing left
        assert str(exc).strip() and "Traceback" not in str(exc), exc
    finally:
        control.clear_faults()
    wait_empty(target)


@pytest.mark.timeout(900)
def test_cli_create_and_destroy_on_a_rough_api(target: Target, control: Any) -> None:
    control.set_faults({"chaos": True, "seed": 3})
    try:
        created = cli(target, "create", "--name", "rough", "--workers", "1", ok=False)
        if created.returncode != 0:  # a clear one-line error, nothing left behind
            assert created.stderr.strip().startswith("error:"), created.stderr[-2000:]
            assert "Traceback" not in created.stderr
        if created.returncode == 0:
            destroyed = cli(target, "destroy", "--yes", "rough", ok=False)
            assert destroyed.returncode == 0 or "error:" in destroyed.stderr, destroyed.stderr
            if destroyed.returncode != 0:  # "run it again to finish": it does
                control.clear_faults()
                cli(target, "destroy", "--yes", "rough")
    finally:
        control.clear_faults()
    wait_empty(target)


def test_one_503_on_the_poll_fails_no_cli_create(target: Target, control: Any) -> None:
    control.set_faults({"http": [{"path": "^/actions", "status": 503, "count": 1}]})
    cli(target, "create", "--name", "polled", "--workers", "1")
    control.set_faults({"http": [{"path": "^/actions", "status": 503, "count": 1}]})
    cli(target, "destroy", "--yes", "polled")
    assert target.leftovers() == []
