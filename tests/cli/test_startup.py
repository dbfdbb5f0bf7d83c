"""`scherbelberg --help` (and each command's --help) loads no dask, distributed or hcloud."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cli.conftest import ROOT

HEAVY = ("dask", "distributed", "hcloud")
PROBE = """
import json, sys
import scherbelberg.cli
from scherbelberg.cli import main
after_import = [m for m in {heavy} if m in sys.modules]
try:
    main(sys.argv[1:], prog_name="scherbelberg")
except SystemExit:
    pass
print(json.dumps({{"import": after_import, "run": [m for m in {heavy} if m in sys.modules]}}))
"""

COMMANDS = [
    "catalog", "cleanup", "client", "create", "dashboard", "destroy", "image", "logs", "ls",
    "reap", "scale", "scp", "ssh",
]  # fmt: skip


@pytest.mark.parametrize("args", [["--help"], *[[c, "--help"] for c in COMMANDS]])
def test_help_loads_nothing_heavy(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {"import": [], "run": []}


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scherbelberg", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0
    for name in [*COMMANDS, "demo", "emulator"]:
        assert f"  {name} " in result.stdout
