"""`cleanup` deletes what an abandoned `create` left behind, never a create in progress."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from scherbelberg.cluster.state import ClusterState
from tests.cli.conftest import argv, cli, cli_env, cli_json
from tests.e2e.conftest import Target

pytestmark = pytest.mark.machines  # starts clusters on real machines


def test_cleanup_after_a_killed_create_spares_a_live_one(target: Target) -> None:
    """Issue 8, must show 2: a `create` killed by SIGKILL once its scheduler server exists is
    "creating" while its lease lasts, then "incomplete"; `cleanup --yes` then deletes all of
    it (and its local state), while another `create` running at that moment is untouched."""
    env = cli_env(target, DASK_SCHERBELBERG__CREATION_LEASE="20s")
    killed = subprocess.Popen(
        argv(target, "create", "--name", "killed", "--workers", "1"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    alive = subprocess.Popen(
        argv(target, "create", "--name", "alive", "--workers", "2"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = target.hcloud()
        deadline = time.monotonic() + 120
        selector = "scherbelberg/cluster=killed,scherbelberg/role=scheduler"
        while not client.servers.get_all(label_selector=selector):
            assert killed.poll() is None, "create ended before it could be killed"
            assert time.monotonic() < deadline, "create made no scheduler server"
            time.sleep(0.1)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        state = Path(os.environ["SCHERBELBERG_STATE_DIR"]) / "killed"
        assert state.exists()  # the killed process could not clean up its local state

        # within its lease it counts as a create in progress: cleanup leaves it alone
        statuses = {c["name"]: c["status"] for c in cli_json(target, "ls")}
        assert statuses["killed"] == "creating"
        assert cli_json(target, "cleanup")["resources"] == []

        deadline = time.monotonic() + 60
        while {c["name"]: c["status"] for c in cli_json(target, "ls")}["killed"] != "incomplete":
            assert time.monotonic() < deadline, "the lease of the killed create never ran out"
            time.sleep(2)
        assert alive.poll() is None, "the other create finished too early for this test"
        listed = cli_json(target, "cleanup")["resources"]
        assert {o["cluster"] for o in listed} == {"killed"}
        refused = cli(target, "cleanup", ok=False)  # no terminal to confirm on: nothing deleted
        assert refused.returncode != 0 and "--yes" in refused.stderr

        done = cli(target, "cleanup", "--yes")
        assert "deleted" in done.stdout
        assert not [r for r in target.leftovers() if " killed-" in r]
        assert not state.exists()

        # the create that was running meanwhile finishes as if nothing happened
        out, err = alive.communicate(timeout=600)
        assert alive.returncode == 0, err[-2000:]
        assert "cluster alive is ready" in out
        statuses = {c["name"]: c["status"] for c in cli_json(target, "ls")}
        assert statuses == {"alive": "ready"}
        assert "nothing to clean up" in cli(target, "cleanup").stdout
    finally:
        for process in (killed, alive):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
        cli(target, "destroy", "--yes", "alive", ok=False)
    assert target.leftovers() == []


def test_cleanup_removes_local_state_of_vanished_clusters(target: Target) -> None:
    """What Ctrl-C pressed twice during `create` used to leave: local state, no resources."""
    ghost = ClusterState(
        name="ghost", endpoint=target.endpoint, created=time.time(), location="fsn1", labels={}
    )
    ghost.save()
    other = ClusterState(
        name="elsewhere",
        endpoint="http://127.0.0.1:9/v1",
        created=time.time(),
        location="fsn1",
        labels={},
    )
    other.save()
    assert cli_json(target, "cleanup")["local_states"] == ["ghost"]
    assert "1 local states" in cli(target, "cleanup", "--yes").stdout
    assert ClusterState.list_names() == ["elsewhere"]  # another endpoint's state stays
    other.delete()


def test_cleanup_leaves_live_clusters_alone(target: Target) -> None:
    cli(target, "create", "--name", "alive", "--workers", "0")
    try:
        assert "nothing to clean up" in cli(target, "cleanup", "--yes").stdout
        assert len(target.leftovers()) == 5  # scheduler, network, firewall, key, group
    finally:
        cli(target, "destroy", "--yes", "alive")
