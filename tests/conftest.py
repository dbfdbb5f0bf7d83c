"""Fixtures shared by the whole suite: one local Hetzner per test session, a project per test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hcloud import Client

from scherbelberg.emulator.control import LocalHetzner

LOG_DIR = Path(os.environ.get("SCHERBELBERG_TEST_LOGS", tempfile.gettempdir()))


@pytest.fixture(scope="session")
def local_hetzner() -> Iterator[LocalHetzner]:
    """A local Hetzner with real machines, shared by the session (its image is built once)."""
    log_path = LOG_DIR / "scherbelberg-test-emulator.log"
    machines = os.environ.get("SCHERBELBERG_TEST_MACHINES", "nspawn")  # "none": API-only dev runs
    with log_path.open("a") as log, LocalHetzner(machines=machines, stderr=log) as hetzner:
        yield hetzner


@pytest.fixture
def project_token(local_hetzner: LocalHetzner) -> Iterator[str]:
    """A fresh, isolated project; whatever a test leaves in it is deleted afterwards."""
    token = local_hetzner.control.new_project()
    yield token
    delete_everything(Client(token, api_endpoint=local_hetzner.endpoint, poll_interval=0.2))


@pytest.fixture
def hcloud_client(local_hetzner: LocalHetzner, project_token: str) -> Client:
    return Client(project_token, api_endpoint=local_hetzner.endpoint, poll_interval=0.2)


def delete_everything(client: Client) -> None:
    for server in client.servers.get_all():
        client.servers.delete(server).wait_until_finished()
    for firewall in client.firewalls.get_all():
        client.firewalls.delete(firewall)
    for network in client.networks.get_all():
        client.networks.delete(network)
    for group in client.placement_groups.get_all():
        client.placement_groups.delete(group)
    for key in client.ssh_keys.get_all():
        client.ssh_keys.delete(key)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI (CI=true, against the local Hetzner) a skipped test is a failure: every skip here
    means "no machines" or "not the local Hetzner", and CI must run them all."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and os.environ.get("CI") and not os.environ.get("SCHERBELBERG_E2E_TOKEN"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"
