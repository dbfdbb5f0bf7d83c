"""Ctrl-C during `create` rolls back what was made, and says so."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import argv, cli_env
from tests.cli.test_timeline import check_timeline
from tests.e2e.conftest import Target

pytestmark = pytest.mark.machines  # starts clusters on real machines


def test_ctrl_c_rolls_back(target: Target, tmp_path: Path) -> None:
    picture = tmp_path / "start.png"
    process = subprocess.Popen(
        argv(
            target, "create", "--name", "interrupted", "--workers", "1", "--timeline", str(picture)
        ),
        env=cli_env(target),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = target.hcloud()
    deadline = time.monotonic() + 120
    while len(client.servers.get_all(label_selector="scherbelberg/cluster=interrupted")) < 2:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "create made no servers"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (  # {err}
        "error: interrupted; cluster interrupted was rolled back, nothing is left"
    ), err[-6000:]
    assert target.leftovers() == []
    assert not (Path(os.environ["SCHERBELBERG_STATE_DIR"]) / "interrupted").exists()
    # a picture of where the start stopped: both servers requested, neither ready
    check_timeline(picture, "interrupted", "interrupted", ["scheduler", "worker-0"])
