"""A 1+4 cluster lifecycle on a rough API: time and Hetzner API requests with and without
`--chaos` (low-rate 5xx, 429s and slow answers on every path) and the release lag.

Runs on the local Hetzner with the `realistic` latency profile (which also holds firewalls,
networks and placement groups for 5 s after their servers are deleted). For each run:
outcome (ok, or the one-line error), time to ready, close, API requests of the lifecycle and
how many of them the API answered with an error.

    .venv/bin/python bench/rough_api.py --seeds 1 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass

from scherbelberg.emulator.control import LocalHetzner


@dataclass
class Run:
    label: str
    outcome: str
    ready: float
    close: float
    requests: int
    errors: int


def lifecycle(hetzner: LocalHetzner, label: str, faults: dict[str, object], workers: int) -> Run:
    from distributed import Client

    from scherbelberg import HetznerCluster
    from scherbelberg.errors import ScherbelbergError

    control = hetzner.control
    token = control.new_project(name=f"rough-{label}", servers=workers + 8)
    control.set_faults(faults)
    outcome, ready, close = "ok", 0.0, 0.0
    started = time.time()
    try:
        cluster = HetznerCluster(n_workers=workers, **hetzner.cluster_arguments(token))
        ready = time.time() - started
        with Client(cluster) as client:
            client.submit(sum, [1, 2]).result()
        closing = time.time()
        cluster.close()
        close = time.time() - closing
    except ScherbelbergError as exc:
        outcome = f"failed: {str(exc).splitlines()[0][:80]}"
    finally:
        control.clear_faults()
    records = control.requests(token=token)
    errors = sum(1 for r in records if int(r.get("status", 200)) >= 400)
    return Run(label, outcome, ready, close, len(records), errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    os.environ.setdefault("SCHERBELBERG_STATE_DIR", tempfile.mkdtemp(prefix="sbg-bench-"))
    runs = []
    with LocalHetzner(latency_profile="realistic", stderr=sys.stderr) as hetzner:
        runs.append(lifecycle(hetzner, "calm", {}, args.workers))
        for seed in args.seeds:
            runs.append(lifecycle(hetzner, f"chaos seed {seed}", {"chaos": True, "seed": seed},
                                  args.workers))  # fmt: skip
            print(f"{runs[-1].label}: {runs[-1].outcome}", file=sys.stderr)
    print(f"1 scheduler + {args.workers} workers, realistic latency profile\n")
    print("| run | outcome | ready (s) | close (s) | requests | error answers |")
    print("|---|---|---:|---:|---:|---:|")
    for r in runs:
        print(
            f"| {r.label} | {r.outcome} | {r.ready:.1f} | {r.close:.1f} | {r.requests} | "
            f"{r.errors} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
