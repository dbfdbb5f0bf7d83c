"""Issue 7: output habits of Unix tools. `ls | head -1` exits 0 without a traceback; `ls` at 80
columns breaks no word."""

from __future__ import annotations

import subprocess

from tests.cli.conftest import argv, cli, cli_env, cli_json
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


def test_ls_at_80_columns_breaks_no_word(target: Target) -> None:
    cli(target, "create", "--name", "narrow", "--workers", "1", "--ttl", "1h")
    try:
        out = cli(target, "ls", env=cli_env(target, COLUMNS="80")).stdout
        lines = out.splitlines()
        assert all(len(line) <= 80 for line in lines), out
        words = set(out.split())
        for word in ("scheduler", "worker-0", "running", "expires"):
            assert any(word in w for w in words), (word, out)
        assert not {"schedule", "r"} <= words, out  # "schedule / r" was the defect
    finally:
        cli(target, "destroy", "--yes", "narrow")


def test_catalog_lists_only_what_a_location_offers(target: Target) -> None:
    out = cli(target, "catalog", "--location", "ash").stdout
    listed = out.split("server types offered in ash")[1]
    names = {line.split()[0] for line in listed.splitlines()[2:] if line.strip()}
    assert "cpx22" in names
    assert "cx23" not in names and "cax11" not in names  # not offered in ash at all
    assert "n/a" not in out
    data = cli_json(target, "catalog")
    cpx22 = next(t for t in data["server_types"] if t["name"] == "cpx22")
    assert "ash" in cpx22["locations"] and "ash" in cpx22["orderable_in"]
