"""`scherbelberg demo` exits 0 in a fresh virtualenv that holds only `pip install <checkout>`
(issue 7, must show 2): the package alone is enough, no test extras, no numpy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scherbelberg.emulator.machines.nspawn import missing_requirements
from tests.cli.conftest import ROOT

pytestmark = pytest.mark.machines  # starts clusters on real machines


@pytest.mark.timeout(1500)
def test_demo_exits_zero_in_a_fresh_venv(tmp_path: Path) -> None:
    missing = missing_requirements()
    if missing:
        pytest.skip("; ".join(missing))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    # what the user has: the package and its dependencies, nothing of the test extras
    have = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.util as u; print(u.find_spec('numpy'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert have.stdout.strip() == "None"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HCLOUD_", "DASK_"))}
    env.pop("HETZNER", None)
    env["SCHERBELBERG_STATE_DIR"] = str(tmp_path / "state")
    result = subprocess.run(
        [str(venv / "bin" / "scherbelberg"), "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "demo finished" in result.stderr
    assert "π from 4 million random points: 3.14" in result.stderr
    assert "Mismatched versions" not in result.stderr + result.stdout
