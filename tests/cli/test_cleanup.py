"""Must show 3: `cleanup` finds and deletes what a `create` killed with SIGKILL left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import argv, cli, cli_env, cli_json
from tests.e2e.conftest import Target


def test_cleanup_after_a_killed_create(target: Target) -> None:
    if target.control is None:
        pytest.skip("needs the local Hetzner's fault injection to kill create at a known point")
    # hold the scheduler's create request, so the kill lands after network, firewall, key and
    # placement group were made and before any server exists
    target.control.set_faults(
        {"http": [{"path": "^/servers$", "method": "POST", "status": 503, "delay": 60, "count": 1}]}
    )
    process = subprocess.Popen(
        argv(target, "create", "--name", "killed", "--workers", "1"),
        env=cli_env(target),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = target.hcloud()
        deadline = time.monotonic() + 120
        while not client.placement_groups.get_all(label_selector="scherbelberg/cluster=killed"):
            assert process.poll() is None, "create ended before it could be killed"
            assert time.monotonic() < deadline, "create made no placement group"
            time.sleep(0.1)
        time.sleep(1)  # the POST /servers is now held by the fault
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        target.control.clear_faults()
    left = sorted(target.leftovers())
    assert left == [
        "firewall killed-fw",
        "network killed-net",
        "placement group killed-spread-0",
        "ssh key killed-key",
    ]
    state = Path(os.environ["SCHERBELBERG_STATE_DIR"]) / "killed"
    assert state.exists()  # the killed process could not clean up its local state either

    [listed] = cli_json(target, "ls")
    assert listed["name"] == "killed" and not listed["live"]
    orphans = cli_json(target, "cleanup")  # without --yes: only lists
    assert sorted(f"{o['kind']}:{o['name']}" for o in orphans) == [
        "firewalls:killed-fw",
        "networks:killed-net",
        "placement_groups:killed-spread-0",
        "ssh_keys:killed-key",
    ]
    refused = cli(target, "cleanup", ok=False)  # no terminal to confirm on: nothing deleted
    assert refused.returncode != 0 and "--yes" in refused.stderr
    assert len(target.leftovers()) == 4

    done = cli(target, "cleanup", "--yes")
    assert "deleted 4 orphaned resources" in done.stdout
    assert target.leftovers() == []
    assert not state.exists()
    assert "nothing to clean up" in cli(target, "cleanup").stdout


def test_cleanup_leaves_live_clusters_alone(target: Target) -> None:
    cli(target, "create", "--name", "alive", "--workers", "0")
    try:
        assert "nothing to clean up" in cli(target, "cleanup", "--yes").stdout
        assert len(target.leftovers()) == 5  # scheduler, network, firewall, key, group
    finally:
        cli(target, "destroy", "--yes", "alive")
