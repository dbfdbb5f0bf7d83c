"""Issue 8, must show 1: a script that makes a cluster and ends without close() — normally,
by an uncaught exception, or stopped by SIGTERM — leaves nothing billing within 60 s of its
end, and no state; a cluster it asked to keep (shutdown_on_close=False) is left alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scherbelberg.cluster.state import ClusterState
from tests.cli.conftest import ROOT, argv, cli_env
from tests.e2e.conftest import Target

SCRIPT = """
import json, os, time
from distributed import Client
from scherbelberg import HetznerCluster

kwargs = json.loads(os.environ["KWARGS"])
cluster = HetznerCluster(n_workers=1, **kwargs)
client = Client(cluster)
print("computed", client.submit(sum, [1, 2]).result(), flush=True)
ending = os.environ["ENDING"]
if ending == "exception":
    raise RuntimeError("the user's bug")
if ending == "sigterm":
    time.sleep(600)
"""
DIES = {"normal": 0, "exception": 1, "sigterm": -signal.SIGTERM}  # as without scherbelberg


def run_script(target: Target, cwd: Path, ending: str, **kwargs: object) -> tuple[int, str]:
    """Run SCRIPT as a user would; returns its exit status and stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ENDING": ending}
    env["KWARGS"] = json.dumps({**target.cluster_kwargs, **kwargs})
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = "-"
    while line and not line.startswith("computed"):  # the cluster's price line comes first
        line = process.stdout.readline()  # blocks until the cluster computed (or died)
    assert line.strip() == "computed 3", process.communicate(timeout=60)[1][-3000:]
    if ending == "sigterm":
        process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    return process.returncode, err


@pytest.mark.parametrize("ending", list(DIES))
def test_a_script_without_close_leaves_nothing(target: Target, tmp_path: Path, ending: str) -> None:
    returncode, err = run_script(target, tmp_path, ending)
    ended = time.monotonic()
    assert returncode == DIES[ending], err[-3000:]
    assert "which this process made and did not close" in err
    # no errors from distributed's own close afterwards: the one traceback is the user's
    assert err.count("Traceback") == (ending == "exception"), err[-3000:]
    assert "ERROR" not in err, err[-3000:]
    if ending == "exception":
        assert "RuntimeError: the user's bug" in err
    while left := target.leftovers():
        assert time.monotonic() - ended < 60, left
        time.sleep(2)
    assert ClusterState.list_names() == []


def test_a_cluster_asked_to_stay_stays(target: Target, tmp_path: Path) -> None:
    returncode, err = run_script(target, tmp_path, "normal", shutdown_on_close=False)
    assert returncode == 0, err[-3000:]
    assert "did not close" not in err
    [name] = ClusterState.list_names()
    assert any(r.startswith("server ") for r in target.leftovers())
    destroyed = subprocess.run(
        argv(target, "destroy", "--yes", name),
        env=cli_env(target),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert destroyed.returncode == 0, destroyed.stderr[-3000:]
