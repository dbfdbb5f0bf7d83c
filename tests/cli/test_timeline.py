"""`create --timeline FILE`: refused in one line before anything is made when it cannot be
drawn; `check_timeline` is what test_lifecycle (a start that gets ready) and test_interrupt (a
start stopped by Ctrl-C) assert about the picture and its records."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from scherbelberg.cluster import timeline
from tests.cli.conftest import ROOT, cli, cli_env
from tests.e2e.conftest import Target


def check_timeline(png: Path, cluster: str, outcome: str, nodes: list[str]) -> dict[str, Any]:
    """The picture is a PNG with one row per node, titled with the outcome; the records beside
    it hold those nodes with their stages in order. Returns the records."""
    from PIL import Image
    from PIL.PngImagePlugin import PngImageFile

    records = json.loads(png.with_suffix(".json").read_text())
    assert records["cluster"] == cluster
    assert records["outcome"] == outcome
    assert [n["name"] for n in records["nodes"]] == [f"{cluster}-{n}" for n in nodes]
    assert [n["role"] for n in records["nodes"]] == [
        "scheduler" if n == "scheduler" else "worker" for n in nodes
    ]
    for node in records["nodes"]:
        events = node["events"]
        assert "requested" in events, node
        # the stages a node goes through itself, in that order ("created" is Hetzner's view)
        own = [e for e in timeline.ORDER if e in events and e != "created"]
        assert [events[e] for e in own] == sorted(events[e] for e in own), node
        if outcome == "ready":
            assert own == [e for e in timeline.ORDER if e != "created"], node
            assert "created" in events, node
        else:
            assert "ready" not in events, node
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert isinstance(image, PngImageFile)
        width, height = timeline.figure_size(len(nodes))
        assert image.size == (round(width * timeline.DPI), round(height * timeline.DPI))
        assert image.text["Title"].startswith(f"{cluster}: 1 scheduler + ")
        assert f"{outcome} after " in image.text["Title"]
    return dict(records)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--timeline", "start.txt"], "a timeline is a .png, .svg, .pdf file, not 'start.txt'"),
        (["--timeline", "s.png", "--dry-run"], "not with --dry-run"),
        (["--timeline", "s.png", "--no-wait"], "not with --no-wait"),
        (["--timeline", "s.png"], "needs matplotlib: pip install 'scherbelberg[timeline]'"),
    ],
)
def test_refused_before_anything_is_made(
    target: Target, tmp_path: Path, args: list[str], expected: str
) -> None:
    env = cli_env(target)
    if "needs matplotlib" in expected:  # a matplotlib that cannot be imported shadows the real
        (tmp_path / "matplotlib").mkdir()
        (tmp_path / "matplotlib" / "__init__.py").write_text(
            "raise ImportError(\"No module named 'matplotlib'\")\n"
        )
        env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{ROOT}"
    result = cli(target, "create", "--name", "pictured", *args, env=env, ok=False, cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and line.endswith(expected), line
    assert target.leftovers() == []
    assert not (Path(os.environ["SCHERBELBERG_STATE_DIR"]) / "pictured").exists()
    assert not list(tmp_path.glob("s.*"))
