"""Issue 7, must show 4: a shell that only evaluates what the emulator gives it runs the
README's Python example, unchanged, and the example leaves nothing behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hcloud import Client

from scherbelberg.emulator.machines.nspawn import missing_requirements
from tests.cli.conftest import ROOT


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## What it does", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "no Python example under 'What it does'"
    return found.group(1)


@pytest.mark.timeout(1200)
def test_the_readme_example_in_a_shell_that_evaluates_the_emulator(tmp_path: Path) -> None:
    missing = missing_requirements()
    if missing:
        pytest.skip("; ".join(missing))
    example = tmp_path / "readme_example.py"
    example.write_text(readme_example())
    # nothing of the test's own settings: only what the emulator's lines export
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HCLOUD_", "DASK_", "HETZNER")) and k != "SCHERBELBERG_STATE_DIR"
    }
    env["SCHERBELBERG_STATE_DIR"] = str(tmp_path / "state")
    env["SCHERBELBERG_EMULATOR_RUN"] = str(tmp_path / "run")  # not a developer's emulator
    env["PYTHONPATH"] = str(ROOT)
    python = sys.executable
    script = f"""
set -e
eval "$({python} -m scherbelberg emulator --background)"
cp "$SCHERBELBERG_EMULATOR_RUN/emulator.env" {tmp_path}/settings.env
{python} {example}
"""
    try:
        result = subprocess.run(
            ["bash", "-c", script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=1100,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().splitlines()[-1] == "328350"
        settings = dict(
            line.removeprefix("export ").split("=", 1)
            for line in (tmp_path / "settings.env").read_text().splitlines()
        )
        client = Client(settings["HCLOUD_TOKEN"], api_endpoint=settings["HCLOUD_ENDPOINT"])
        assert client.servers.get_all() == []
        assert client.networks.get_all() == [] and client.firewalls.get_all() == []
        assert client.ssh_keys.get_all() == [] and client.placement_groups.get_all() == []
    finally:
        subprocess.run(
            [python, "-m", "scherbelberg", "emulator", "--stop"], env=env, timeout=200, check=False
        )
