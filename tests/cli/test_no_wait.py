"""`create --no-wait` returns once every server is requested; the nodes come up on their own."""

from __future__ import annotations

import time

import pytest

from tests.cli.conftest import cli, cli_env, cli_json
from tests.e2e.conftest import Target

pytestmark = pytest.mark.machines  # starts clusters on real machines


def test_no_wait_returns_early_and_the_cluster_comes_up(target: Target) -> None:
    # environment images on (the suite turns them off): no image exists, and --no-wait must
    # not start a builder it would abandon when it leaves
    env = cli_env(target, DASK_SCHERBELBERG__ENV_IMAGES="true")
    summary = cli_json(target, "create", "--name", "nowait", "--workers", "1", "--no-wait", env=env)
    assert summary["ready"] is False and summary["scheduler_address"].startswith("tls://")
    names = {s.name for s in target.hcloud().servers.get_all()}
    assert names == {"nowait-scheduler", "nowait-worker-0"}
    deadline = time.monotonic() + 600
    while True:  # the worker bootstraps and registers without this process
        ran = cli(
            target, "ssh", "nowait", "worker-0", "--",
            "systemctl is-active dask-worker && hostname", ok=False, timeout=60,
        )  # fmt: skip
        if ran.returncode == 0:
            break
        assert time.monotonic() < deadline, ran.stderr
        time.sleep(3)
    assert ran.stdout.split()[-1] == "nowait-worker-0"
    # the cluster is up and still no builder appeared
    assert {s.name for s in target.hcloud().servers.get_all()} == names
    logs = cli(target, "logs", "nowait", "worker-0").stdout
    assert "journalctl -u dask-worker" in logs
    cli(target, "destroy", "--yes", "nowait")
    assert target.leftovers() == []
