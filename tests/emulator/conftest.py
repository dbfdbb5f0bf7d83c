"""API-only local Hetzners for tests that need no machines (they start in about two seconds),
and the few resources many emulator tests create the same way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
from hcloud import Client
from hcloud.firewalls import BoundFirewall, FirewallRule
from hcloud.images import Image
from hcloud.networks import BoundNetwork, NetworkSubnet
from hcloud.server_types import ServerType
from hcloud.servers import CreateServerResponse, Server

from scherbelberg.emulator.control import LocalHetzner
from tests.conftest import LOG_DIR, must

T = TypeVar("T")


def api_only(**options: object) -> LocalHetzner:
    """A machine-less local Hetzner started with `options` (LocalHetzner's keywords)."""
    log = (LOG_DIR / "scherbelberg-test-emulator-api.log").open("a")
    return LocalHetzner(machines="none", stderr=log, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def api_hetzner() -> Iterator[LocalHetzner]:
    """One API-only local Hetzner per test module, without faults."""
    with api_only() as hetzner:
        yield hetzner


@pytest.fixture
def api_client(api_hetzner: LocalHetzner) -> Iterator[Client]:
    """A fresh project on `api_hetzner`; the faults a test set are cleared after it."""
    token = api_hetzner.control.new_project(requests_per_hour=10**6)
    yield Client(token, api_endpoint=api_hetzner.endpoint, poll_interval=0.05)
    api_hetzner.control.clear_faults()


def create_server(
    client: Client, name: str, *, wait: bool = True, **options: Any
) -> CreateServerResponse:
    """A cx23 debian-12 server with `options` (`servers.create`'s keywords); `wait`: until its
    create actions have finished, so it runs."""
    response = client.servers.create(
        name=name, server_type=ServerType(name="cx23"), image=Image(name="debian-12"), **options
    )
    for action in [response.action, *response.next_actions] if wait else []:
        action.wait_until_finished()
    return response


def cloud_network(client: Client, name: str, ip_range: str, subnet: str) -> BoundNetwork:
    """A network `ip_range` with one cloud subnet `subnet` in eu-central."""
    return client.networks.create(
        name=name,
        ip_range=ip_range,
        subnets=[NetworkSubnet(type="cloud", ip_range=subnet, network_zone="eu-central")],
    )


def ssh_firewall(client: Client, name: str, source: str = "0.0.0.0/0") -> BoundFirewall:
    """A firewall that lets in SSH from `source` only."""
    rule = FirewallRule(direction="in", protocol="tcp", port="22", source_ips=[source])
    firewall = client.firewalls.create(name=name, rules=[rule]).firewall
    assert firewall is not None
    return firewall


def private_ip(server: Server, index: int = 0) -> str:
    return str(must(server.private_net)[index].ip)
