"""Time to a ready HetznerCluster, our control-plane overhead, and API requests per lifecycle.

Runs on the local Hetzner with the `realistic` latency profile (Hetzner-like action and boot
times, 80 ms per API request). For each cluster size it reports:

- ready: from `HetznerCluster(...)` to the constructor returning (all workers registered);
- slowest node: the longest path of one node, from its create request to ready (registered);
- overhead: ready minus slowest node, i.e. what the control plane adds around the nodes
  (input checks, keys, CA, network/firewall/key creation, waiting, SSH);
- requests: Hetzner API requests of the whole lifecycle (create, ready, close), from the
  emulator's request log, against the goal 3*(workers+1)+15.

    .venv/bin/python bench/cluster_startup.py --workers 1 4 16
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
class Result:
    workers: int
    ready: float
    slowest_node: float
    overhead: float
    requests: int
    close: float

    @property
    def goal(self) -> int:
        return 3 * (self.workers + 1) + 15


def measure(hetzner: LocalHetzner, workers: int) -> Result:
    from scherbelberg import HetznerCluster

    control = hetzner.control
    token = control.new_project(name=f"bench-{workers}", servers=workers + 8)
    started = time.time()
    cluster = HetznerCluster(n_workers=workers, **hetzner.cluster_arguments(token))
    ready = time.time() - started
    nodes = [cluster.scheduler, *cluster.workers.values()]
    slowest = max(n.events["ready"] - n.events["requested"] for n in nodes)
    closing = time.time()
    cluster.close()
    close = time.time() - closing
    requests = len(control.requests(token=token))
    return Result(workers, ready, slowest, ready - slowest, requests, close)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--latency-profile", default="realistic", choices=["realistic", "instant"])
    parser.add_argument(
        "--warm",
        action="store_true",
        help="run a 1-worker cluster first (fills the package mirror)",
    )
    args = parser.parse_args()
    os.environ.setdefault("SCHERBELBERG_STATE_DIR", tempfile.mkdtemp(prefix="sbg-bench-"))
    results = []
    with LocalHetzner(latency_profile=args.latency_profile, stderr=sys.stderr) as hetzner:
        if args.warm:
            measure(hetzner, 1)
        for workers in args.workers:
            result = measure(hetzner, workers)
            results.append(result)
            print(f"{workers} workers: ready in {result.ready:.1f} s", file=sys.stderr)
    print(f"latency profile: {args.latency_profile}\n")
    print("| workers | ready (s) | slowest node (s) | overhead (s) | close (s) | requests | goal |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.workers} | {r.ready:.1f} | {r.slowest_node:.1f} | {r.overhead:.1f} | "
            f"{r.close:.1f} | {r.requests} | ≤ {r.goal} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
