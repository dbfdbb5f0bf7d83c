"""The control-plane tier: `HetznerCluster`'s provisioning, scaling, rollback and close in
seconds, without root and without machines.

Real: the local Hetzner's HTTP API (its own instance, no machines), hcloud, the cluster's
code, mutual TLS and Dask's scheduler and workers. Fake: only a node's boot — SSH to a server
that ran cloud-init — is replaced by a Dask process in this one (`local_nodes.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hcloud import Client

from scherbelberg.emulator.control import EmulatorControl, LocalHetzner
from scherbelberg.hetzner import session

from . import local_nodes

MANAGED = "scherbelberg/managed"


@pytest.fixture(scope="session")
def api_hetzner() -> Iterator[LocalHetzner]:
    with LocalHetzner(machines="none") as hetzner:
        yield hetzner


@dataclass
class Project:
    """One fresh project on the API-only local Hetzner, and cluster arguments pointing at it."""

    token: str
    endpoint: str
    control: EmulatorControl
    state_dir: Path

    def kwargs(self, **more: Any) -> dict[str, Any]:
        return {
            "token": self.token,
            "endpoint": self.endpoint,
            "allowed_sources": ["127.0.0.1/32"],  # no address detection: loopback only
            "client_address_url": "http://127.0.0.1:9/",  # and were it asked, nothing answers
            "env_images": False,
            "asynchronous": True,
            "timeouts": {"action": 20, "bootstrap": 30, "registration": 20},
            **more,
        }

    def hcloud(self) -> Client:
        return Client(self.token, api_endpoint=self.endpoint, poll_interval=0.1)

    def servers(self, role: str | None = None) -> list[Any]:
        selector = MANAGED + (f",scherbelberg/role={role}" if role else "")
        return self.hcloud().servers.get_all(label_selector=selector)

    def leftovers(self) -> list[str]:
        """Everything scherbelberg made that is still in the project, snapshots included."""
        client = self.hcloud()
        return [
            *(f"server {s.name}" for s in client.servers.get_all(label_selector=MANAGED)),
            *(f"network {n.name}" for n in client.networks.get_all(label_selector=MANAGED)),
            *(f"firewall {f.name}" for f in client.firewalls.get_all(label_selector=MANAGED)),
            *(f"ssh key {k.name}" for k in client.ssh_keys.get_all(label_selector=MANAGED)),
            *(
                f"placement group {g.name}"
                for g in client.placement_groups.get_all(label_selector=MANAGED)
            ),
            *(
                f"image {i.id}"
                for i in client.images.get_all(label_selector=MANAGED, type=["snapshot"])
            ),
        ]

    def clusters_in_state(self) -> list[str]:
        return sorted(p.name for p in self.state_dir.iterdir()) if self.state_dir.exists() else []


@pytest.fixture
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Action polls every 0.25-0.5 s instead of after 1, 3, 7 s (the emulator's actions are
    quick, its waits short): for tests where a deadline or a deletion, not the poller, is
    under test."""
    monkeypatch.setattr(session, "FIRST_POLL", 0.25)
    monkeypatch.setattr(session, "MAX_POLL", 0.5)


@pytest.fixture
def project(
    api_hetzner: LocalHetzner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    state_dir = tmp_path / "state"
    monkeypatch.setenv("SCHERBELBERG_STATE_DIR", str(state_dir))
    for name in ("HETZNER", "HCLOUD_TOKEN", "HCLOUD_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    control = api_hetzner.control
    project = Project(control.new_project(), api_hetzner.endpoint, control, state_dir)
    yield project
    control.clear_faults()
    control.set_unavailable()
    left = project.leftovers()
    local_nodes.RUNNING.clear()
    assert not left, f"the test left resources behind: {left}"
