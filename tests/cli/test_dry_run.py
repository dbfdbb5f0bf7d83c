"""Issue 8, must show 6: `create --dry-run -w 4` prints what the cluster would cost — the sum
of `/pricing` for its server types and their primary IPv4 addresses — and makes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import requests

from scherbelberg import HetznerCluster
from tests.cli.conftest import cli, cli_json
from tests.e2e.conftest import Target


def gross(prices: list[dict[str, Any]], location: str, period: str) -> float:
    entry = next(p for p in prices if p["location"] == location)
    return float(entry[f"price_{period}"]["gross"])


def expected(
    target: Target, scheduler: str, worker: str, workers: int, location: str
) -> tuple[float, float]:
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
            gross(types[scheduler], location, period)
            + workers * gross(types[worker], location, period)
            + (workers + 1) * gross(ipv4, location, period)
        )
    return sums[0], sums[1]


def assert_project_empty(target: Target) -> None:
    """Nothing at all, labelled or not, and no local state."""
    client = target.hcloud()
    assert target.leftovers() == []
    for kind in ("servers", "networks", "firewalls", "ssh_keys", "placement_groups"):
        assert getattr(client, kind).get_all() == [], kind
    state_dir = Path(os.environ["SCHERBELBERG_STATE_DIR"])
    assert not state_dir.exists() or not any(state_dir.iterdir())


def test_dry_run_prices_servers_and_ipv4_and_makes_nothing(target: Target) -> None:
    data = cli_json(target, "create", "--dry-run", "-w", "4")
    for key in ("location", "scheduler_server_type", "worker_server_type", "currency"):
        assert data[key], key
    assert data["workers"] == 4 and data["currency"] == "EUR"
    where = data["location"]
    hourly, monthly = expected(
        target, data["scheduler_server_type"], data["worker_server_type"], 4, where
    )
    assert abs(data["price_hourly"] - hourly) < 1e-6, (data, hourly)
    assert abs(data["price_monthly"] - monthly) < 1e-4, (data, monthly)
    assert [(p["what"], p["count"]) for p in data["parts"]] == [
        (f"scheduler {data['scheduler_server_type']}", 1),
        (f"worker {data['worker_server_type']}", 4),
        ("primary IPv4 address", 5),
    ]

    text = cli(target, "create", "--dry-run", "-w", "4").stdout
    assert f"1 scheduler + 4 workers in {where}" in text
    assert "primary IPv4 address" in text
    assert f"total: {hourly:.4f} EUR per hour, at most {monthly:.2f} EUR per month" in text
    assert "nothing was created" in text

    # and the library's way: nothing made either
    cost = HetznerCluster.estimate(n_workers=4, **target.cluster_kwargs)
    assert abs(cost.price_hourly - hourly) < 1e-6 and cost.location == where

    assert_project_empty(target)


def test_dry_run_refuses_bad_input_in_one_line(target: Target) -> None:
    """As a create would: one line on stderr, exit 1, and still nothing made."""
    for args, words in [
        (("--location", "xx9"), "unknown location 'xx9'"),
        (("--worker-type", "cx999"), "unknown server type 'cx999'"),
        (("--image", "no-such-image"), "unknown image 'no-such-image'"),
        (("--ttl", "soon"), "ttl 'soon' is not a duration"),
    ]:
        result = cli(target, "create", "--dry-run", *args, ok=False)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stdout == "", args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
    assert_project_empty(target)


@pytest.mark.machines  # starts a cluster on real machines
def test_create_and_ls_count_ipv4_in_the_price(target: Target) -> None:
    """Issue 8: create's summary and ls's cost per hour and so far include the IPv4 addresses,
    and equal what the dry run said."""
    said = cli_json(target, "create", "--dry-run", "--workers", "0", "--location", "fsn1")
    summary = cli_json(target, "create", "--name", "priced", "--workers", "0", "--location", "fsn1")
    try:
        [listed] = cli_json(target, "ls")
        node = listed["nodes"][0]
        hourly, _ = expected(target, node["server_type"], node["server_type"], 0, "fsn1")
        assert abs(summary["price_hourly"] - hourly) < 1e-6, (summary, hourly)
        assert abs(said["price_hourly"] - hourly) < 1e-6, (said, hourly)
        assert abs(listed["price_hourly"] - hourly) < 1e-6, (listed["price_hourly"], hourly)
        assert listed["cost_so_far"] >= hourly - 1e-6  # the first started hour
    finally:
        cli(target, "destroy", "--yes", "priced")
