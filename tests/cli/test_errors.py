"""Must show 5: bad input is one line on stderr, a non-zero exit code, no traceback, and
nothing is created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.conftest import cli, cli_env
from tests.e2e.conftest import Target

CASES = {
    "unknown server type": (["create", "--worker-type", "cx99"], {}, "unknown server type 'cx99'"),
    "unknown scheduler type": (
        ["create", "--scheduler-type", "nope"],
        {},
        "unknown server type 'nope'",
    ),
    "unknown location": (["create", "--location", "mars1"], {}, "unknown location 'mars1'"),
    "missing token": (["create"], {"HCLOUD_TOKEN": ""}, "no Hetzner API token"),
    "missing token in --token-env": (
        ["ls", "--token-env", "MY_TOKEN"],
        {},
        "no Hetzner API token: set MY_TOKEN",
    ),
    "wrong token": (["create"], {"HCLOUD_TOKEN": "0" * 64}, "token was rejected"),
    "wrong token, ls": (["ls"], {"HCLOUD_TOKEN": "0" * 64}, "token was rejected"),
    "unknown cluster, destroy": (["destroy", "--yes", "nope"], {}, "no cluster named 'nope'"),
    "unknown cluster, ls": (["ls", "nope"], {}, "no cluster named 'nope'"),
    "unknown cluster, scale": (["scale", "nope", "2"], {}, "no cluster named 'nope'"),
    "unknown cluster, ssh": (["ssh", "nope", "--", "true"], {}, "no cluster named 'nope'"),
    "unknown cluster, logs": (["logs", "nope"], {}, "no cluster named 'nope'"),
    "unknown cluster, client": (["client", "nope"], {}, "no cluster named 'nope'"),
    "unknown cluster, dashboard": (["dashboard", "nope"], {}, "no cluster named 'nope'"),
    "invalid cluster name": (["create", "--name", "Bad_Name"], {}, "invalid cluster name"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_line_no_traceback_nothing_created(target: Target, case: str) -> None:
    args, env, expected = CASES[case]
    result = cli(target, *args, env=cli_env(target, **env), ok=False, timeout=120)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    if env.get("HCLOUD_TOKEN"):
        assert env["HCLOUD_TOKEN"] not in result.stderr + result.stdout  # never printed
    assert target.leftovers() == []
    state = Path(os.environ["SCHERBELBERG_STATE_DIR"])
    assert list(state.glob("*/state.json")) == []  # no cluster state was written


def test_debug_shows_the_traceback(target: Target) -> None:
    env = cli_env(target, HCLOUD_TOKEN="0" * 64)
    result = cli(target, "--debug", "ls", env=env, ok=False)
    assert result.returncode != 0
    # the traceback of the error itself, from the target (not some other failure, such as an
    # endpoint that was not passed)
    assert "Traceback" in result.stderr
    assert "HetznerError: " in result.stderr and "token was rejected" in result.stderr, (
        result.stderr[-2000:]
    )
