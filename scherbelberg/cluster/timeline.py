"""A picture of a cluster start: one row per node, a coloured segment per stage.

Nodes record when they reach each stage (`HetznerNode.events`, `time.time()`). A `Recorder`
keeps those records (the event dicts, not the nodes: a node that fails or is scaled away keeps
its row) and turns them into a plain `Timeline`, which `draw` renders with matplotlib (an
optional extra, `pip install scherbelberg[timeline]`; imported only when drawing) and
`Timeline.as_dict` writes as JSON. `scherbelberg create --timeline FILE` and
`bench/start_timeline.py` use it.

A stage lasts from its event to the earliest event of any later stage: Hetzner's actions may
finish after the node already answers SSH, so "created" can come after "booted" (its segment is
then empty and left out, and "creating server" ends at the boot).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .hetzner_cluster import HetznerCluster

# the event that starts a segment, what the node does from then on, its colour
STAGES: tuple[tuple[str, str, str], ...] = (
    ("requested", "creating server", "#9ecae1"),
    ("created", "booting", "#4292c6"),
    ("booted", "cloud-init", "#bdbdbd"),
    ("environment", "environment", "#fd8d3c"),
    ("dask", "starting dask", "#74c476"),
    ("bootstrapped", "registering", "#9e9ac8"),
)
END = "ready"  # registered with the scheduler: the node's start is over
ORDER = [event for event, _, _ in STAGES] + [END]
FORMATS = (".png", ".svg", ".pdf")
DPI = 100
EXTRA_HINT = "pip install 'scherbelberg[timeline]'"


@dataclass
class NodeRecord:
    name: str  # the server's name
    role: str  # scheduler or worker
    events: dict[str, float]  # stage -> time.time()

    def segments(self, end: float) -> list[tuple[str, float, float]]:
        """(event, start, stop) per stage; a node not ready runs its last stage to `end`."""
        times = {e: t for e, t in self.events.items() if e in ORDER}
        out = []
        for i, event in enumerate(ORDER[:-1]):
            if event not in times:
                continue
            later = [times[e] for e in ORDER[i + 1 :] if e in times]
            stop = min(later) if later else max(end, times[event])
            if stop > times[event]:
                out.append((event, times[event], stop))
        return out


@dataclass
class Timeline:
    """One cluster start, as plain data (JSON: `as_dict`, `from_dict`)."""

    cluster: str
    workers: int  # workers asked for
    source: str  # how nodes got their environment: "installed" or "environment image <id>"
    started: float  # time.time() when the start began
    ended: float  # when the record was taken
    outcome: str  # "ready", or "failed: <why>"
    nodes: list[NodeRecord] = field(default_factory=list)

    @property
    def origin(self) -> float:
        """Zero of the x axis: the first server request (or the start, if none was made)."""
        return min((n.events["requested"] for n in self.nodes if "requested" in n.events),
                   default=self.started)  # fmt: skip

    def title(self) -> str:
        workers = f"{self.workers} worker{'' if self.workers == 1 else 's'}"
        what, _, why = self.outcome.split("\n")[0].partition(": ")
        return (
            f"{self.cluster}: 1 scheduler + {workers}, {self.source}; "
            f"{what} after {self.ended - self.origin:.0f} s{f': {why[:70]}' if why else ''}"
        )

    def as_dict(self) -> dict[str, Any]:
        origin = self.origin
        return {
            "cluster": self.cluster,
            "workers": self.workers,
            "source": self.source,
            "started": self.started,
            "ended": self.ended,
            "outcome": self.outcome,
            "nodes": [
                {
                    "name": n.name,
                    "role": n.role,
                    "events": dict(n.events),
                    # seconds from the first request, for reading without arithmetic
                    "seconds": {e: round(t - origin, 2) for e, t in n.events.items()},
                }
                for n in self.nodes
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        nodes = [NodeRecord(n["name"], n["role"], dict(n["events"])) for n in data["nodes"]]
        fields = ("cluster", "workers", "source", "started", "ended", "outcome")
        return cls(**{k: data[k] for k in fields}, nodes=nodes)


def _node_key(node: NodeRecord) -> tuple[int, int, float]:
    number = re.search(r"(\d+)$", node.name)
    return (
        0 if node.role == "scheduler" else 1,
        int(number.group(1)) if number else -1,
        node.events.get("requested", float("inf")),
    )


def source_of(cluster: HetznerCluster) -> str:
    """How the cluster's (worker) nodes get their environment, for the picture's title."""
    image = cluster.images.get("worker")
    if image is None:  # the start stopped before the images were looked up
        return "installed" if not cluster.settings.env.preinstalled else "from an image"
    env_for = getattr(cluster, "env_for", None)  # with image auto: per role, once chosen
    env = env_for("worker") if env_for is not None else cluster.settings.env
    if not env.preinstalled:
        return f"installed on {image.name}"
    auto = getattr(getattr(cluster, "auto_image", None), "used", {}).get(image.architecture)
    return f"from environment image {auto.id if auto is not None else image.id}"


class Recorder:
    """Collects the stage records of a cluster's nodes while it starts (`update`, or `watch`
    in the background); `snapshot` returns them as a `Timeline`."""

    def __init__(self, cluster: HetznerCluster, workers: int) -> None:
        self.cluster = cluster
        self.workers = workers
        self.started = time.time()
        # by the identity of the events dict, held here: it outlives its node
        self._seen: dict[int, NodeRecord] = {}

    def update(self) -> None:
        """Take in nodes not seen before (cheap: call it as often as you like)."""
        for node in list(self.cluster.nodes.values()):
            if id(node.events) not in self._seen:
                self._seen[id(node.events)] = NodeRecord(node.name, node.role, node.events)

    async def watch(self, interval: float = 0.25) -> None:
        """Update until cancelled (a node can appear and go within a start)."""
        while True:
            self.update()
            await asyncio.sleep(interval)

    def snapshot(self, outcome: str = "ready") -> Timeline:
        self.update()
        nodes = [NodeRecord(n.name, n.role, dict(n.events)) for n in self._seen.values()]
        return Timeline(
            cluster=self.cluster.name,
            workers=self.workers,
            source=source_of(self.cluster),
            started=self.started,
            ended=time.time(),
            outcome=outcome,
            nodes=sorted(nodes, key=_node_key),
        )


def check_available(path: str | Path) -> None:
    """Raise ValueError (one line) if the picture cannot be drawn: call before starting."""
    if Path(path).suffix.lower() not in FORMATS:
        raise ConfigError(f"a timeline is a {', '.join(FORMATS)} file, not {str(path)!r}")
    try:  # imported, not only found: a broken install fails here too, before the start
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise ConfigError(f"drawing a timeline needs matplotlib: {EXTRA_HINT}") from None


def json_path(path: str | Path) -> Path:
    """Where the records of a picture go: beside it, with the suffix .json."""
    return Path(path).with_suffix(".json")


def figure_size(nodes: int) -> tuple[float, float]:
    """Width and height in inches: 0.3 inch per row, room for the title, axis and legend."""
    return (10.0, 1.8 + 0.3 * max(1, nodes))


def draw(timeline: Timeline, path: str | Path) -> None:
    """Render `timeline` to `path` (PNG, SVG or PDF by its suffix), without a display."""
    # Figure without pyplot: the Agg canvas, no global state, no GUI backend is ever loaded
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    origin = timeline.origin
    nodes = timeline.nodes
    rows = max(1, len(nodes))
    fig = Figure(figsize=figure_size(len(nodes)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    labels = {event: (label, colour) for event, label, colour in STAGES}
    used: list[str] = []
    unfinished = False
    for row, node in enumerate(nodes):
        segments = node.segments(timeline.ended)
        for i, (event, start, stop) in enumerate(segments):
            last = i == len(segments) - 1 and END not in node.events
            unfinished = unfinished or last
            ax.barh(
                row,
                stop - start,
                left=start - origin,
                height=0.7,
                color=labels[event][1],
                hatch="///" if last else None,
                edgecolor="#525252" if last else "none",
                linewidth=0.5,
            )
            if event not in used:
                used.append(event)
        if END in node.events:
            ax.plot([node.events[END] - origin], [row], marker="|", color="black", ms=12, mew=2)
    if timeline.outcome == "ready" and nodes:
        ax.axvline(timeline.ended - origin, color="black", linewidth=0.8, linestyle=":")
    ax.set_yticks(range(len(nodes)))
    ax.set_yticklabels([_short(n.name, timeline.cluster) for n in nodes])
    ax.set_ylim(rows - 0.5, -0.5)  # the scheduler on top
    ax.set_xlim(left=0)
    ax.set_xlabel("seconds since the first server request")
    ax.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    ax.set_axisbelow(True)
    handles: list[Any] = [Patch(color=labels[e][1], label=labels[e][0]) for e in ORDER if e in used]
    if any(END in n.events for n in nodes):
        handles.append(Line2D([], [], marker="|", color="black", ls="none", ms=10, mew=2,
                              label="registered"))  # fmt: skip
    if unfinished:
        handles.append(
            Patch(facecolor="white", edgecolor="#525252", hatch="///", label="unfinished")
        )
    fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False, fontsize=8)
    ax.set_title(timeline.title(), fontsize=9, loc="left")
    metadata = {"Title": timeline.title(), "Software": "scherbelberg"}
    suffix = Path(path).suffix.lower()
    fig.savefig(str(path), metadata=metadata if suffix != ".svg" else {"Title": metadata["Title"]})


def _short(name: str, cluster: str) -> str:
    return name.removeprefix(f"{cluster}-")


def write(timeline: Timeline, path: str | Path) -> tuple[Path, Path]:
    """The picture at `path` and its records beside it (`json_path`); returns both."""
    import json

    picture, records = Path(path), json_path(path)
    records.write_text(json.dumps(timeline.as_dict(), indent=1) + "\n")
    draw(timeline, picture)
    return picture, records
