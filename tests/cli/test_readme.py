"""Issue 7, must show 4: a shell that only evaluates what the emulator gives it runs the
README's Python example, unchanged, and the example leaves nothing behind.

Both come from README.md itself: the shell lines of "The local Hetzner" run as they stand (in
a directory whose `.venv` is this one), with the first Python block of "What it does" saved
under the name they run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scherbelberg.emulator.machines.nspawn import missing_requirements
from tests.cli.conftest import ROOT

pytestmark = [
    pytest.mark.machines,
    pytest.mark.skipif(bool(missing_requirements()), reason="; ".join(missing_requirements())),
    pytest.mark.timeout(1200),
]

# with the shell's own settings: every kind of resource the example makes, listed with hcloud
CHECK_EMPTY = """
import os
from hcloud import Client

client = Client(os.environ["HCLOUD_TOKEN"], api_endpoint=os.environ["HCLOUD_ENDPOINT"])
kinds = ("servers", "networks", "firewalls", "ssh_keys", "placement_groups")
left = [f"{kind}: {item.name}" for kind in kinds for item in getattr(client, kind).get_all()]
print("project empty" if not left else "left: " + ", ".join(left))
"""


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def first_block(section: str, language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert found, f"no {language} block"
    return found.group(1)


def test_the_readme_example_in_a_shell_that_evaluates_the_emulator(tmp_path: Path) -> None:
    example = first_block(readme_section("What it does"), "python")
    shell = first_block(readme_section("The local Hetzner"), "bash")
    lines = [line for line in shell.splitlines() if line.strip()]
    assert len(lines) == 3 and lines[0].startswith("eval "), lines
    assert "emulator --stop" in lines[2], lines
    script_name = re.search(r"python (\S+\.py)", lines[1])
    assert script_name, lines[1]
    (tmp_path / script_name.group(1)).write_text(example)
    (tmp_path / "check_empty.py").write_text(CHECK_EMPTY)
    (tmp_path / ".venv").symlink_to(sys.prefix)  # the README's `.venv/bin/…` is this one

    # nothing of the test's own settings: only what the emulator's lines export
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HCLOUD_", "DASK_", "HETZNER", "SCHERBELBERG_"))
    }
    env["SCHERBELBERG_STATE_DIR"] = str(tmp_path / "state")
    env["SCHERBELBERG_EMULATOR_RUN"] = str(tmp_path / "run")  # not a developer's emulator
    script = "\n".join(["set -e", lines[0], lines[1], ".venv/bin/python check_empty.py", lines[2]])
    try:
        result = subprocess.run(
            ["bash", "-c", script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=1100,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        # the example's result, then the check; between them only what the cluster says
        # while it closes (it waits for the environment image it made for next time)
        out = result.stdout.splitlines()
        assert "328350" in out and out[-1] == "project empty", result.stdout
        after = out[out.index("328350") + 1 : -1]
        assert all(line.startswith("cluster ") for line in after), result.stdout
        assert "Traceback" not in result.stderr and " ERROR " not in result.stderr, result.stderr
        assert "local Hetzner stopped" in result.stderr
        assert not (tmp_path / "run" / "emulator.pid").exists()
    finally:  # whatever happened above, the emulator and its machines go
        subprocess.run(
            [sys.executable, "-m", "scherbelberg", "emulator", "--stop"],
            env=env,
            timeout=200,
            check=False,
        )
