"""Where a cluster start spends its time: bare vs from an environment image, and adapt().

On the local Hetzner (`realistic` latency profile: Hetzner-like action and boot times) this
builds one environment image, then for each size starts a cluster twice, side by side:

- bare: every node installs the environment (`env_images=False`: no image is used or made);
- image: every node boots from the environment image (`image=<id>, preinstalled=True`) and
  only checks it.

For each it reports ready (from `HetznerCluster(...)` to every worker registered), the slowest
node's boot (its create request to SSH answering) and the margin between the two (goal, from
an image: ready <= slowest boot + 5 s), and the bare/image ratio. Then, on a cluster from the
image with `adapt(minimum=1, maximum=3)`, it submits a backlog and reports the time from the
backlog to the first added worker registered, against that worker's boot (goal: <= boot + 3 s).
Each start is drawn as a timeline (`scherbelberg.cluster.timeline`) into --out, with its records
as JSON beside it.

    .venv/bin/python bench/start_timeline.py --workers 1 4 16 --out docs/img
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scherbelberg.cluster import timeline
from scherbelberg.emulator.control import LocalHetzner

BOOT_MARGIN = 5.0  # goal: ready from an image <= slowest node's boot + this
ADAPT_MARGIN = 3.0  # goal: an added worker registered <= its boot + this
ADAPT_DEADLINE = 600.0


@dataclass
class Start:
    workers: int
    kind: str  # bare or image
    ready: float  # HetznerCluster(...) to ready
    slowest_boot: float  # longest create request -> SSH answers among the nodes
    slowest_node: float  # longest create request -> registered
    picture: str

    @property
    def margin(self) -> float:
        return self.ready - self.slowest_boot


@dataclass
class Adapt:
    backlog_to_request: float  # tasks submitted -> the added worker's server requested
    backlog_to_registered: float  # tasks submitted -> the added worker registered
    boot: float  # the added worker: create request -> SSH answers
    added: int  # workers added within the deadline
    picture: str


def _boot(events: dict[str, float]) -> float:
    return events["booted"] - events["requested"]


async def start(kwargs: dict[str, Any], workers: int, kind: str, out: Path) -> Start:
    from scherbelberg import HetznerCluster

    began = time.time()
    cluster = HetznerCluster(n_workers=workers, asynchronous=True, **kwargs)
    recorder = timeline.Recorder(cluster, workers)
    watcher = asyncio.ensure_future(recorder.watch())
    try:
        await cluster
        ready = time.time() - began
        record = recorder.snapshot("ready")
    finally:
        watcher.cancel()
        await cluster.close()
    picture = out / f"start-{workers}-{kind}.png"
    timeline.write(record, picture)
    return Start(
        workers=workers,
        kind=kind,
        ready=ready,
        slowest_boot=max(_boot(n.events) for n in record.nodes),
        slowest_node=max(n.events["ready"] - n.events["requested"] for n in record.nodes),
        picture=picture.name,
    )


async def adapt(kwargs: dict[str, Any], out: Path) -> Adapt:
    """A 1-worker cluster from the image, adapt(1, 3), a backlog of 3 workers' worth."""
    from distributed import Client

    from scherbelberg import HetznerCluster

    cluster = HetznerCluster(n_workers=1, asynchronous=True, **kwargs)
    recorder = timeline.Recorder(cluster, 1)
    watcher = asyncio.ensure_future(recorder.watch(0.1))
    try:
        await cluster
        first = set(cluster.workers)
        cluster.adapt(minimum=1, maximum=3)
        async with Client(cluster, asynchronous=True) as client:
            # unknown tasks count 0.5 s each: 60 of them ask for more than 3 workers
            futures = client.map(time.sleep, [20.0] * 60, pure=False)
            submitted = time.time()
            deadline = submitted + ADAPT_DEADLINE
            added: list[timeline.NodeRecord] = []
            while time.time() < deadline:
                recorder.update()
                added = [
                    n
                    for n in recorder.snapshot().nodes
                    if n.role == "worker" and n.name not in first and "ready" in n.events
                ]
                if len(added) >= 2:  # maximum=3: two added
                    break
                await asyncio.sleep(0.2)
            if not added:
                raise RuntimeError(f"adapt added no worker within {ADAPT_DEADLINE:.0f} s")
            client.cancel(futures)
        record = recorder.snapshot("ready")
        record.workers = len([n for n in record.nodes if n.role == "worker"])
    finally:
        watcher.cancel()
        await cluster.close()
    picture = out / "adapt-image.png"
    timeline.write(record, picture)
    new = min(added, key=lambda n: n.events["ready"])
    return Adapt(
        backlog_to_request=new.events["requested"] - submitted,
        backlog_to_registered=new.events["ready"] - submitted,
        boot=_boot(new.events),
        added=len(added),
        picture=picture.name,
    )


async def build_image(hetzner: LocalHetzner, token: str) -> tuple[int, float]:
    from scherbelberg.bootstrap import client_env_spec
    from scherbelberg.cluster import env_images
    from scherbelberg.hetzner.session import HetznerSession

    info = hetzner.control.info()
    session = HetznerSession(token, hetzner.endpoint)
    began = time.time()
    image_id = await env_images.build_env_image(
        session,
        env=client_env_spec(index_url=info["pip_index_url"]),
        location="fsn1",
        server_type="cx23",
        base_image="debian-12",
        deadline=900,
        client_address_url=info["echo_url"],
    )
    return image_id, time.time() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--latency-profile", default="realistic", choices=["realistic", "instant"])
    parser.add_argument("--no-adapt", action="store_true", help="skip the adapt() measurement")
    args = parser.parse_args()
    from scherbelberg import HetznerCluster

    timeline.check_available(args.out / "x.png")
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SCHERBELBERG_STATE_DIR", tempfile.mkdtemp(prefix="sbg-bench-"))
    starts: list[Start] = []
    adapted: Adapt | None = None

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    with LocalHetzner(latency_profile=args.latency_profile, stderr=sys.stderr) as hetzner:
        control = hetzner.control
        token = control.new_project(name="bench-timeline", servers=max(args.workers) + 8)
        base = hetzner.cluster_arguments(token)
        image_id, build = asyncio.run(build_image(hetzner, token))
        say(f"environment image {image_id} built in {build:.0f} s")
        bare: dict[str, Any] = {**base, "image": "debian-12"}
        if "env_images" in inspect.signature(HetznerCluster.__init__).parameters:
            bare["env_images"] = False  # with image auto: neither use nor make one
        imaged = {**base, "image": str(image_id), "preinstalled": True}
        for workers in args.workers:
            for kind, kwargs in (("bare", bare), ("image", imaged)):
                result = asyncio.run(start(kwargs, workers, kind, args.out))
                starts.append(result)
                say(f"{workers} workers, {kind}: ready in {result.ready:.1f} s")
                _save(args.out, starts, adapted, build)
        if not args.no_adapt:
            adapted = asyncio.run(adapt(imaged, args.out))
            say(f"adapt: a new worker registered {adapted.backlog_to_registered:.1f} s after")
            _save(args.out, starts, adapted, build)
    _table(starts, adapted, build, args.latency_profile)
    return 0


def _save(out: Path, starts: list[Start], adapted: Adapt | None, build: float) -> None:
    """Results so far, so that a run cut short still leaves its numbers."""
    data = {
        "image_build": build,
        "starts": [{**asdict(s), "margin": s.margin} for s in starts],
        "adapt": asdict(adapted) if adapted else None,
    }
    (out / "start-timeline-results.json").write_text(json.dumps(data, indent=1) + "\n")


def _table(starts: list[Start], adapted: Adapt | None, build: float, profile: str) -> None:
    print(f"latency profile: {profile}; environment image built in {build:.0f} s\n")
    print(
        "| workers | bare ready (s) | image ready (s) | bare/image | image: slowest boot (s) "
        f"| image: ready - boot (goal ≤ {BOOT_MARGIN:.0f} s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    by = {(s.workers, s.kind): s for s in starts}
    for workers in sorted({s.workers for s in starts}):
        bare, image = by.get((workers, "bare")), by.get((workers, "image"))
        if bare is None or image is None:
            continue
        print(
            f"| {workers} | {bare.ready:.1f} | {image.ready:.1f} | {bare.ready / image.ready:.2f} "
            f"| {image.slowest_boot:.1f} | {image.margin:.1f} |"
        )
    if adapted is not None:
        print(
            f"\nadapt(minimum=1, maximum=3), from the image: backlog → server requested "
            f"{adapted.backlog_to_request:.1f} s, "
            f"→ registered {adapted.backlog_to_registered:.1f} s; "
            f"that worker's boot {adapted.boot:.1f} s; registered - boot = "
            f"{adapted.backlog_to_registered - adapted.boot:.1f} s (goal ≤ {ADAPT_MARGIN:.0f} s); "
            f"{adapted.added} workers added"
        )


if __name__ == "__main__":
    sys.exit(main())
