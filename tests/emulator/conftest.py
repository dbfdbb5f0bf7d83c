"""API-only local Hetzners for tests that need no machines: they start in about two seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hcloud import Client

from scherbelberg.emulator.control import LocalHetzner
from tests.conftest import LOG_DIR


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
