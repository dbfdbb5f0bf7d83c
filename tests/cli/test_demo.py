"""Must show 4: `scherbelberg demo` (which starts a local Hetzner of its own) exits 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scherbelberg.emulator.machines.nspawn import missing_requirements
from tests.cli.conftest import ROOT


@pytest.mark.timeout(1500)
def test_demo_exits_zero(tmp_path: object) -> None:
    missing = missing_requirements()
    if missing:
        pytest.skip("; ".join(missing))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HCLOUD_", "DASK_"))}
    env.pop("HETZNER", None)
    env["SCHERBELBERG_STATE_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "scherbelberg", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "demo finished" in result.stderr
