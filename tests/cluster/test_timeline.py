"""The start timeline from fixed records (no machines): segments, JSON, and the picture itself
(a real PNG whose rows and colours are the records')."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from scherbelberg.cluster import timeline
from scherbelberg.cluster.timeline import NodeRecord, Timeline

pytest.importorskip("matplotlib")
from PIL import Image  # pillow comes with matplotlib
from PIL.PngImagePlugin import PngImageFile

T0 = 1_700_000_000.0
READY = {
    "requested": 0,
    "created": 9,
    "booted": 8,
    "environment": 9,
    "dask": 40,
    "bootstrapped": 44,
}


def _events(offsets: Mapping[str, float], ready: float | None) -> dict[str, float]:
    events = {k: T0 + v for k, v in offsets.items()}
    if ready is not None:
        events["ready"] = T0 + ready
    return events


def _timeline(workers: int, failed: bool = False) -> Timeline:
    nodes = [NodeRecord("demo-scheduler", "scheduler", _events(READY, 45))]
    for i in range(workers):
        late = {k: v + 1 + i for k, v in READY.items()}
        nodes.append(NodeRecord(f"demo-worker-{i}", "worker", _events(late, 47 + i)))
    if failed:  # the last worker stops in its environment install
        nodes[-1] = NodeRecord(
            nodes[-1].name,
            "worker",
            _events({"requested": 1, "booted": 9, "environment": 10}, None),
        )
    end = T0 + (60 if failed else 47 + workers)
    return Timeline(
        cluster="demo",
        workers=workers,
        source="installed on debian-12",
        started=T0 - 2,
        ended=end,
        outcome="failed: worker demo-worker-1 bootstrap failed" if failed else "ready",
        nodes=nodes,
    )


def _colours(path: Path) -> set[tuple[int, int, int]]:
    with Image.open(path) as image:
        counted = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    colours = set()
    for _, rgb in counted:
        assert isinstance(rgb, tuple) and len(rgb) == 3, rgb  # an RGB image's colours
        r, g, b = rgb
        colours.add((r, g, b))
    return colours


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return r, g, b


COLOUR = {event: _rgb(colour) for event, _, colour in timeline.STAGES}


def test_segments_follow_stage_order_not_time() -> None:
    node = NodeRecord("n", "worker", _events(READY, 45))
    segments = node.segments(T0 + 100)
    # "created" (9 s) came after "booted" (8 s): creating ends at the boot, no booting segment
    assert [(e, a - T0, b - T0) for e, a, b in segments] == [
        ("requested", 0, 8),
        ("booted", 8, 9),
        ("environment", 9, 40),
        ("dask", 40, 44),
        ("bootstrapped", 44, 45),
    ]
    # a node that never got ready runs its last stage to the end of the record
    stuck = NodeRecord("n", "worker", _events({"requested": 0, "booted": 5}, None))
    assert [(e, b - T0) for e, _, b in stuck.segments(T0 + 30)] == [
        ("requested", 5),
        ("booted", 30),
    ]


def test_json_round_trip_and_seconds() -> None:
    made = _timeline(2)
    data = json.loads(json.dumps(made.as_dict()))
    assert Timeline.from_dict(data) == made
    assert [n["name"] for n in data["nodes"]] == [
        "demo-scheduler",
        "demo-worker-0",
        "demo-worker-1",
    ]
    assert data["nodes"][1]["seconds"]["ready"] == 47  # from the first request
    assert made.title() == (
        "demo: 1 scheduler + 2 workers, installed on debian-12; ready after 49 s"
    )


def test_picture_has_a_row_per_node_and_the_stage_colours(tmp_path: Path) -> None:
    one, five = tmp_path / "one.png", tmp_path / "five.png"
    picture, records = timeline.write(_timeline(1), one)
    timeline.draw(_timeline(5), five)
    assert (picture, records) == (one, tmp_path / "one.json")
    assert one.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(one) as small, Image.open(five) as big:
        assert small.format == big.format == "PNG"
        assert isinstance(small, PngImageFile)
        assert small.width == big.width == 1000
        # 0.3 inch (30 px at 100 dpi) per row
        assert big.height - small.height == 4 * 30
        assert small.text["Title"] == _timeline(1).title()
    assert json.loads(records.read_text())["outcome"] == "ready"
    colours = _colours(one)
    # "created" is never a segment here (the nodes answered SSH first)
    for event, colour in COLOUR.items():
        assert (colour in colours) == (event != "created"), event


def test_a_failed_start_is_drawn_to_where_it_stopped(tmp_path: Path) -> None:
    failed = _timeline(2, failed=True)
    path = tmp_path / "failed.png"
    timeline.draw(failed, path)
    with Image.open(path) as image:
        assert isinstance(image, PngImageFile)
        assert image.text["Title"].startswith("demo: 1 scheduler + 2 workers")
        assert image.text["Title"].endswith(
            "failed after 60 s: worker demo-worker-1 bootstrap failed"
        )
    # the stuck worker's install segment runs to the end: 10 s to 60 s
    [*_, (event, start, stop)] = failed.nodes[-1].segments(failed.ended)
    assert (event, start - T0, stop - T0) == ("environment", 10, 60)


def test_check_available_refuses_other_files() -> None:
    timeline.check_available("start.png")
    with pytest.raises(ValueError, match=r"not 'start\.txt'"):
        timeline.check_available("start.txt")
