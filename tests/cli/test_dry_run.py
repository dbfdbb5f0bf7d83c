"""Issue 8, must show 6: `create --dry-run -w 4` prints what the cluster would cost — the sum
of `/pricing` for its server types and their primary IPv4 addresses — and makes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import requests

from scherbelberg import HetznerCluster
from tests.cli.conftest import cli, cli_json
from tests.e2e.conftest import Target


def gross(prices: list[dict[str, Any]], location: str, period: str) -> float:
    entry = next(p for p in prices if p["location"] == location)
    return float(entry[f"price_{period}"]["gross"])


def expected(target: Target, scheduler: str, worker: str, workers: int) -> tuple[float, float]:
    """From the raw /pricing answer, independently of scherbelberg's code."""
    pricing = requests.get(
        f"{target.endpoint}/pricing",
        headers={"Authorization": f"Bearer {target.token}"},
        timeout=30,
    ).json()["pricing"]
    types = {t["name"]: t["prices"] for t in pricing["server_types"]}
    ipv4 = next(p["prices"] for p in pricing["primary_ips"] if p["type"] == "ipv4")
    sums = []
    for period in ("hourly", "monthly"):
        sums.append(
            gross(types[scheduler], "fsn1", period)
            + workers * gross(types[worker], "fsn1", period)
            + (workers + 1) * gross(ipv4, "fsn1", period)
        )
    return sums[0], sums[1]


def test_dry_run_prices_servers_and_ipv4_and_makes_nothing(target: Target) -> None:
    data = cli_json(target, "create", "--dry-run", "-w", "4", "--location", "fsn1")
    for key in ("location", "scheduler_server_type", "worker_server_type", "workers"):
        assert data[key], key
    assert data["workers"] == 4 and data["location"] == "fsn1"
    hourly, monthly = expected(target, data["scheduler_server_type"], data["worker_server_type"], 4)
    assert abs(data["price_hourly"] - hourly) < 1e-4, (data, hourly)
    assert abs(data["price_monthly"] - monthly) < 0.01, (data, monthly)
    assert any("IPv4" in part["what"] and part["count"] == 5 for part in data["parts"])

    text = cli(target, "create", "--dry-run", "-w", "4", "--location", "fsn1").stdout
    assert f"total: {hourly:.4f} EUR per hour" in text
    assert "nothing was created" in text

    # and the library's way: nothing made either
    cost = HetznerCluster.estimate(n_workers=4, location="fsn1", **target.cluster_kwargs)
    assert abs(cost.price_hourly - hourly) < 1e-4

    assert target.leftovers() == []
    assert target.hcloud().servers.get_all() == []
    state_dir = Path(os.environ["SCHERBELBERG_STATE_DIR"])
    assert not state_dir.exists() or not any(state_dir.iterdir())


def test_ls_counts_ipv4_in_the_price(target: Target) -> None:
    """Issue 8: ls shows cost per hour and so far with the IPv4 addresses."""
    cli(target, "create", "--name", "priced", "--workers", "0", "--location", "fsn1")
    try:
        [listed] = cli_json(target, "ls")
        hourly, _ = expected(target, listed["nodes"][0]["server_type"], "cx33", 0)
        assert abs(listed["price_hourly"] - hourly) < 1e-4, (listed["price_hourly"], hourly)
    finally:
        cli(target, "destroy", "--yes", "priced")
