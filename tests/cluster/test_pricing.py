"""Issue 8: a cluster's price is its servers plus one primary IPv4 address each (pricing.py),
`HetznerCluster.estimate` gives it from the API and makes nothing, and `ls`'s cost so far caps
the server's month and the address's month each at its own price (inventory.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hcloud import Client

from scherbelberg import HetznerCluster
from scherbelberg.cluster.inventory import Node
from scherbelberg.emulator.control import LocalHetzner
from scherbelberg.errors import ArgumentError, ConfigError
from scherbelberg.hetzner.lookups import ServerTypeInfo
from scherbelberg.hetzner.pricing import Ipv4Price, estimate

IPV4 = Ipv4Price(0.001071, 0.595)


def server_type(name: str, hourly: float, monthly: float) -> ServerTypeInfo:
    return ServerTypeInfo(name, 2, 4.0, 40, "x86", False, hourly, monthly)


def test_servers_plus_one_ipv4_address_each() -> None:
    cost = estimate(
        server_type("cx23", 0.00714, 4.1531), server_type("cx33", 0.011186, 6.5331), 4, "fsn1", IPV4
    )
    assert cost.price_hourly == pytest.approx(0.00714 + 4 * 0.011186 + 5 * 0.001071, abs=1e-9)
    assert cost.price_monthly == pytest.approx(4.1531 + 4 * 6.5331 + 5 * 0.595, abs=1e-9)
    assert [(p["what"], p["count"]) for p in cost.parts] == [
        ("scheduler cx23", 1),
        ("worker cx33", 4),
        ("primary IPv4 address", 5),
    ]
    assert sum(p["hourly"] for p in cost.parts) == pytest.approx(cost.price_hourly, abs=1e-9)
    data = cost.as_dict()
    for key in ("location", "scheduler_server_type", "worker_server_type", "workers"):
        assert data[key] == getattr(cost, key)
    assert data["currency"] == "EUR"


def test_the_total_is_not_the_sum_of_rounded_lines() -> None:
    """0.00714 + 0.011186 + 2 x 0.001071 = 0.020468: 0.0205, where rounding each line to 4
    decimals first gave 0.0204."""
    cost = estimate(
        server_type("cx23", 0.00714, 4.1531), server_type("cx33", 0.011186, 6.5331), 1, "fsn1", IPV4
    )
    assert f"{cost.price_hourly:.4f}" == "0.0205"


def test_no_workers_still_pays_the_schedulers_address() -> None:
    cost = estimate(server_type("cx23", 0.01, 5.0), server_type("cx33", 0.02, 9.0), 0, "x", IPV4)
    assert cost.price_hourly == pytest.approx(0.01 + 0.001071)


def test_cost_so_far_caps_server_and_address_each_at_its_month() -> None:
    """After 520 h the server (5.00 a month at 0.01/h) is capped, its address (0.595 at
    0.001071/h, capped after 556 h) is not yet: 5.00 + 520 x 0.001071."""
    node = Node(
        "scheduler", "c-scheduler", 1, "scheduler", "cx23", "fsn1", "203.0.113.9", None,
        "running", created=0.0, price_hourly=0.01, price_monthly=5.0,
    )  # fmt: skip
    node.add_ipv4(IPV4)
    assert node.price_hourly == pytest.approx(0.011071)
    assert node.cost_so_far(now=520 * 3600) == pytest.approx(5.0 + 520 * 0.001071)
    assert node.cost_so_far(now=10 * 3600 - 1) == pytest.approx(10 * 0.011071)  # started hours
    assert node.cost_so_far(now=10_000 * 3600) == pytest.approx(5.595)


@pytest.fixture
def api(local_hetzner: LocalHetzner, project_token: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:  # fmt: skip
    monkeypatch.setenv("SCHERBELBERG_STATE_DIR", str(tmp_path / "state"))
    yield {"token": project_token, "endpoint": local_hetzner.endpoint}
    client = Client(project_token, api_endpoint=local_hetzner.endpoint)
    for kind in ("servers", "networks", "firewalls", "ssh_keys", "placement_groups"):
        assert getattr(client, kind).get_all() == [], f"estimate made {kind}"
    assert not (tmp_path / "state").exists(), "estimate wrote local state"


def raw_hourly(api: dict[str, str], scheduler: str, worker: str, n: int, location: str) -> float:
    body = requests.get(
        f"{api['endpoint']}/pricing",
        headers={"Authorization": f"Bearer {api['token']}"},
        timeout=30,
    ).json()["pricing"]

    def hourly(prices: list[dict[str, dict[str, str]]]) -> float:
        entry = next(p for p in prices if p["location"] == location)
        return float(entry["price_hourly"]["gross"])

    types = {t["name"]: t["prices"] for t in body["server_types"]}
    ipv4 = next(p["prices"] for p in body["primary_ips"] if p["type"] == "ipv4")
    return hourly(types[scheduler]) + n * hourly(types[worker]) + (n + 1) * hourly(ipv4)


def test_estimate_prices_what_the_arguments_would_make(api: dict[str, str]) -> None:
    cost = HetznerCluster.estimate(
        n_workers=3, location="nbg1", worker_server_type="cx33", ttl="2h", **api
    )
    assert (cost.location, cost.worker_server_type, cost.workers) == ("nbg1", "cx33", 3)
    expected = raw_hourly(api, cost.scheduler_server_type, "cx33", 3, "nbg1")
    assert cost.price_hourly == pytest.approx(expected, abs=1e-6)


def test_estimate_async_and_from_a_running_loop(api: dict[str, str]) -> None:
    async def main() -> tuple[float, float]:
        awaited = await HetznerCluster.estimate_async(n_workers=2, **api)
        blocking = HetznerCluster.estimate(n_workers=2, **api)  # as in a notebook cell
        return awaited.price_hourly, blocking.price_hourly

    awaited, blocking = asyncio.run(main())
    assert awaited == blocking > 0


def test_estimate_checks_as_a_start_would(api: dict[str, str]) -> None:
    with pytest.raises(ArgumentError, match="did you mean worker_server_type="):
        HetznerCluster.estimate(n_workers=1, worker_type="cx33", **api)
    with pytest.raises(ConfigError, match="unknown location"):
        HetznerCluster.estimate(n_workers=1, location="xx9", **api)
    with pytest.raises(ConfigError, match="needs a ttl or an idle_timeout"):
        HetznerCluster.estimate(n_workers=1, reaper="node", **api)
    with pytest.raises(ConfigError, match="n_workers"):
        HetznerCluster.estimate(n_workers=-1, **api)
