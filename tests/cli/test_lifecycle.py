"""Must show 1: create → ls (text and JSON) → a Client from `client -o json` computes →
scale → ssh runs a command on a worker → logs → destroy → nothing left."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from distributed import Client

from tests.cli.conftest import argv, cli, cli_env, cli_json, security_of
from tests.cli.test_timeline import check_timeline
from tests.e2e.conftest import Target

pytestmark = pytest.mark.machines  # starts clusters on real machines

NAME = "clitest"


def test_create_use_scale_destroy(target: Target, tmp_path: Path) -> None:
    picture = tmp_path / "start.png"
    created = cli(target, "create", "--name", NAME, "--workers", "1", "--timeline", str(picture))
    assert f"cluster {NAME} is ready" in created.stdout
    assert "scheduler:  tls://" in created.stdout
    assert f"scherbelberg dashboard {NAME}" in created.stdout
    assert "per hour" in created.stdout
    assert "ready" in created.stderr  # the progress table's final state
    # the start's timeline: a row per node, every stage of each, in order
    assert f"timeline: {picture} (records: {picture.with_suffix('.json')})" in created.stderr
    check_timeline(picture, NAME, "ready", ["scheduler", "worker-0"])

    # ls: text and JSON, found by label and enriched with the local state
    text = cli(target, "ls").stdout
    assert NAME in text and "worker-0" in text and "scheduler" in text
    [listed] = cli_json(target, "ls")
    assert listed["name"] == NAME and listed["live"] and listed["local_state"]
    assert [(n["name"], n["role"]) for n in listed["nodes"]] == [
        ("scheduler", "scheduler"),
        ("worker-0", "worker"),
    ]
    node = listed["nodes"][1]
    assert node["server_name"] == f"{NAME}-worker-0"
    assert node["public_ip"] and node["private_ip"] and node["status"] == "running"
    assert listed["price_hourly"] > 0
    # every started hour is billed: a fresh cluster has cost one hour of each server
    assert abs(listed["cost_so_far"] - listed["price_hourly"]) < 1e-3

    # a Client from `client -o json` computes
    info = cli_json(target, "client", NAME)
    assert info["address"].startswith("tls://")
    security = security_of(info)
    with Client(info["address"], security=security, timeout=60) as client:
        assert client.submit(sum, [1, 2, 3]).result(timeout=120) == 6
    snippet = cli(target, "client", NAME).stdout
    assert info["address"] in snippet and "Security(" in snippet

    # scale up from another process, which attaches, waits and detaches
    scaled = cli(target, "scale", NAME, "2")
    assert "1 → 2 workers" in scaled.stdout
    [listed] = cli_json(target, "ls", NAME)
    assert [n["name"] for n in listed["nodes"]] == ["scheduler", "worker-0", "worker-1"]

    # ssh: a command on a worker (host key pinned), exit code passed through
    assert cli(target, "ssh", NAME, "worker-0", "--", "hostname").stdout.strip() == (
        f"{NAME}-worker-0"
    )
    assert cli(target, "ssh", NAME, "--", "hostname").stdout.strip() == f"{NAME}-scheduler"
    assert cli(target, "ssh", NAME, "worker-1", "--", "exit 7", ok=False).returncode == 7

    # logs: the bootstrap log and the dask service journal
    logs = cli(target, "logs", NAME, "worker-0").stdout
    assert "/var/log/scherbelberg/bootstrap.log" in logs
    assert "journalctl -u dask-worker" in logs
    assert "Registered to" in logs or "Start worker" in logs, logs[-3000:]

    # dashboard: an SSH tunnel in the foreground until Ctrl-C
    tunnel = subprocess.Popen(
        argv(target, "dashboard", NAME), env=cli_env(target), stdout=subprocess.PIPE, text=True
    )
    try:
        assert tunnel.stdout is not None
        url = tunnel.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=60) as page:
            assert page.status == 200
    finally:
        tunnel.send_signal(signal.SIGINT)
        tunnel.wait(timeout=30)

    # destroy: nothing left, in the project or the state dir
    destroyed = cli(target, "destroy", "--yes", NAME)
    assert f"destroyed {NAME}" in destroyed.stdout
    assert cli_json(target, "ls") == []
    assert target.leftovers() == []
    assert not (Path(os.environ["SCHERBELBERG_STATE_DIR"]) / NAME).exists()
