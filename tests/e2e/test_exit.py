"""Issue 8, must show 1: a script that makes a cluster and ends without close() — normally,
by an uncaught exception, or stopped by SIGTERM — leaves nothing billing within 60 s of its
end; a cluster it asked to keep (shutdown_on_close=False) is left alone."""

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
from tests.cli.conftest import ROOT
from tests.e2e.conftest import Target

SCRIPT = """
import json, os, time
from distributed import Client
from scherbelberg import HetznerCluster

cluster = HetznerCluster(n_workers=1, shutdown_on_close={keep}, **json.loads(os.environ["KWARGS"]))
client = Client(cluster)
print("computed", client.submit(sum, [1, 2]).result(), flush=True)
ending = os.environ["ENDING"]
if ending == "exception":
    raise RuntimeError("the user's bug")
if ending == "sigterm":
    time.sleep(600)
"""


def run_script(target: Target, tmp_path: Path, ending: str, keep: bool = True) -> tuple[int, str]:
    env = {**os.environ, "KWARGS": json.dumps(target.cluster_kwargs), "ENDING": ending}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(keep=keep)],
        env=env,
        cwd=tmp_path,
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


@pytest.mark.parametrize("ending", ["normal", "exception", "sigterm"])
def test_a_script_without_close_leaves_nothing(target: Target, tmp_path: Path, ending: str) -> None:
    returncode, err = run_script(target, tmp_path, ending)
    ended = time.monotonic()
    expected = {"normal": 0, "exception": 1, "sigterm": 128 + signal.SIGTERM}[ending]
    assert returncode == expected, err[-3000:]
    assert "which this process made and did not close" in err
    if ending == "exception":
        assert "RuntimeError: the user's bug" in err  # the user's traceback stays theirs
    while target.leftovers():
        assert time.monotonic() - ended < 60, target.leftovers()
        time.sleep(2)
    assert ClusterState.list_names() == []


def test_a_cluster_asked_to_stay_stays(target: Target, tmp_path: Path) -> None:
    returncode, err = run_script(target, tmp_path, "normal", keep=False)
    assert returncode == 0, err[-3000:]
    assert "did not close" not in err
    [name] = ClusterState.list_names()
    assert any(r.startswith("server ") for r in target.leftovers())
    subprocess.run(
        [sys.executable, "-m", "scherbelberg", "destroy", "--yes", name,
         "--endpoint", target.endpoint],
        env={**os.environ, "HCLOUD_TOKEN": target.token, "PYTHONPATH": str(ROOT)},
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
