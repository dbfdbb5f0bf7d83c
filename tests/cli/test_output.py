"""Issue 7: output habits of Unix tools. `ls | head -1` exits 0 without a traceback; `ls` at 80
columns breaks no word."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import ROOT, argv, cli, cli_env, cli_json
from tests.e2e.conftest import Target


def test_ls_into_a_closed_pipe_is_quiet(target: Target) -> None:
    # the shell habit itself
    shell = subprocess.run(
        ["bash", "-o", "pipefail", "-c", " ".join(argv(target, "ls")) + " | head -1"],
        env=cli_env(target),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr
    assert "Traceback" not in shell.stderr and "BrokenPipe" not in shell.stderr
    # and deterministically: the reader is gone before anything is written
    process = subprocess.Popen(
        argv(target, "ls"),
        env=cli_env(target),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert err == ""


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["ls", "--help"], ["emulator", "--help"]]
)
def test_any_output_into_a_closed_pipe_is_quiet(args: list[str]) -> None:
    """Output while parsing (help, version) too, not just a command's own."""
    process = subprocess.Popen(
        [sys.executable, "-m", "scherbelberg", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (0, "")


@pytest.mark.machines  # starts a cluster on real machines
def test_ls_in_a_narrow_terminal_breaks_no_word(target: Target) -> None:
    name = "narrow-terminals-break-no-word-abcdefghi"  # as long as a name may be
    cli(target, "create", "--name", name, "--workers", "1", "--ttl", "1h")
    try:
        # the state root it made holds every cluster's name: 0700, like each cluster's directory
        root = Path(os.environ["SCHERBELBERG_STATE_DIR"])
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o700
        (cluster,) = cli_json(target, "ls")
        whole = {name} | {
            str(node[key])
            for node in cluster["nodes"]
            for key in ("name", "server_type", "public_ip", "status")
        }
        for columns in (80, 60):
            out = cli(target, "ls", env=cli_env(target, COLUMNS=str(columns))).stdout
            assert all(len(line) <= columns for line in out.splitlines()), out
            assert whole <= set(out.split()), (columns, whole - set(out.split()), out)
            assert "…" not in out, out  # nothing shortened, either
            assert not {"schedule", "r"} <= set(out.split()), out  # the defect, at 80 columns
            assert "expires" in out
        # at 80 columns every column fits; narrower, the least needed ones are left out, said so
        wide = cli(target, "ls", env=cli_env(target, COLUMNS="80")).stdout
        assert "private ip" in wide and "€/h" in wide and "left out" not in wide, wide
        narrow = cli(target, "ls", env=cli_env(target, COLUMNS="60")).stdout
        assert "left out to fit; -o json shows everything" in narrow, narrow
    finally:
        cli(target, "destroy", "--yes", name)


def test_catalog_lists_only_what_a_location_offers(target: Target) -> None:
    out = cli(target, "catalog", "--location", "ash").stdout
    listed = out.split("server types offered in ash")[1]
    names = {line.split()[0] for line in listed.splitlines()[2:] if line.strip()}
    assert "cpx22" in names
    assert "cx23" not in names and "cax11" not in names  # not offered in ash at all
    assert "n/a" not in out
    # and the ones left out are named once, e.g. the scheduler's default type
    (elsewhere,) = [line for line in out.splitlines() if line.startswith("not offered in ash:")]
    assert {"cx23", "cax11"} <= set(elsewhere.split(": ")[1].split(", ")), elsewhere
    assert "cpx22" not in elsewhere
    data = cli_json(target, "catalog")
    cpx22 = next(t for t in data["server_types"] if t["name"] == "cpx22")
    assert "ash" in cpx22["locations"] and "ash" in cpx22["orderable_in"]
