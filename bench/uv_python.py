"""Where the environment step of a node's bootstrap spends its time: the system-Python path
(bare debian-12: apt installs python3.11-venv, pip installs uv) against the uv-managed path
(debian-13 for a 3.11 client: uv from the package index, `uv python install` from the lab's
downloads list, `uv venv`). Both then install the same pins with `uv pip install`.

Reads the timestamped lines of each node's bootstrap log (`scherbelberg: <time> ...`) through
Dask itself (`client.run`), on the local Hetzner with the `instant` latency profile. Run it
twice for warm caches (PyPI mirror, apt cache) on the second round:

    .venv/bin/python bench/uv_python.py --rounds 2
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import tempfile
from typing import Any

from scherbelberg.bootstrap import LOG_FILE
from scherbelberg.emulator.control import LocalHetzner

_LINE = re.compile(r"^scherbelberg: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (.*)$")

# (label, the log message that ends the step); a step starts where the one before it ended
STEPS = {
    "debian-12": [
        ("start", "stage environment"),
        ("apt: python3.11-venv", "python3.11-venv installed with apt"),
        ("pip install uv", "uv installed into"),
        ("uv pip install (pins)", "stage dask"),
    ],
    "debian-13": [
        ("start", "stage environment"),
        ("uv from the index", "uv's Python downloads:"),
        ("uv python install", "uv-managed Python 3.11 installed"),
        ("uv venv", "venv from the uv-managed Python"),
        ("uv pip install (pins)", "stage dask"),
    ],
}


def _read_log(path: str = LOG_FILE) -> str:
    """Runs on the node (by value: scherbelberg is not installed there)."""
    with open(path) as f:
        return f.read()


def step_times(log: str, steps: list[tuple[str, str]]) -> dict[str, float]:
    """Seconds per step, from the first log line that contains each step's end message."""
    stamps: list[tuple[datetime.datetime, str]] = []
    for line in log.splitlines():
        m = _LINE.match(line)
        if m:
            stamps.append((datetime.datetime.fromisoformat(m.group(1)), m.group(2)))
    ends = []
    for label, message in steps:
        at = next((t for t, text in stamps if message in text), None)
        if at is None:
            raise RuntimeError(f"no log line with {message!r}:\n{log}")
        ends.append((label, at))
    times = {
        label: (at - ends[i - 1][1]).total_seconds() for i, (label, at) in enumerate(ends) if i
    }
    times["environment total"] = (ends[-1][1] - ends[0][1]).total_seconds()
    return times


def measure(hetzner: LocalHetzner, image: str) -> dict[str, float]:
    from distributed import Client

    from scherbelberg import HetznerCluster

    token = hetzner.control.new_project(name=f"bench-{image}")
    kwargs: dict[str, Any] = {**hetzner.cluster_arguments(token), "env_images": False}
    with HetznerCluster(n_workers=1, image=image, **kwargs) as cluster, Client(cluster) as client:
        client.wait_for_workers(1, timeout=60)
        [log] = client.run(_read_log).values()
    return step_times(log, STEPS[image])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if sys.version_info[:2] != (3, 11):
        parser.error("needs a 3.11 client: debian-12's Python, and not debian-13's")
    os.environ.setdefault("SCHERBELBERG_STATE_DIR", tempfile.mkdtemp(prefix="sbg-bench-"))
    with LocalHetzner(stderr=sys.stderr) as hetzner:
        for round_ in range(1, args.rounds + 1):
            for image in STEPS:
                times = measure(hetzner, image)
                print(f"round {round_} {image} (worker):")
                for label, seconds in times.items():
                    print(f"  {label:<24} {seconds:6.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
