"""Issue 9, must show 4: with Hetzner's release lag (firewall, network and placement group
answer 422 resource_in_use for seconds after their servers are deleted), close() and a
rolled-back create still leave nothing, and the rollback raises its cause."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from scherbelberg import HetznerCluster
from scherbelberg.errors import BootstrapError
from tests.conftest import must
from tests.e2e.conftest import Target


@pytest.fixture
def release_lag(target: Target) -> Iterator[Any]:
    if target.control is None:
        pytest.skip("needs the local Hetzner's release delay")
    target.control.set_faults({"release_delay": 8})
    yield target.control
    target.control.clear_faults()


def test_the_emulator_holds_a_firewall_after_its_server(target: Target, release_lag: Any) -> None:
    client = target.hcloud()
    firewall = client.firewalls.create(name="held").firewall
    server = client.servers.create(
        name="holder",
        server_type=must(client.server_types.get_by_name("cpx22"), "server type cpx22"),
        image=must(
            client.images.get_by_name_and_architecture("debian-12", "x86"), "image debian-12"
        ),
        firewalls=[firewall],
    )
    server.action.wait_until_finished(max_retries=300)
    client.servers.delete(server.server).wait_until_finished(max_retries=300)
    answer = requests.delete(
        f"{target.endpoint}/firewalls/{firewall.id}",
        headers={"Authorization": f"Bearer {target.token}"},
        timeout=30,
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "resource_in_use"
    # hcloud-python does not retry it (Hetzner's own reports): scherbelberg must
    client.firewalls.get_by_id(must(firewall.id, "firewall id"))


def test_close_waits_out_the_release_lag(target: Target, release_lag: Any) -> None:
    with HetznerCluster(n_workers=1, **target.cluster_kwargs) as cluster:
        assert cluster.scheduler_address
    assert target.leftovers() == []


def test_a_rollback_waits_it_out_and_raises_its_cause(target: Target, release_lag: Any) -> None:
    with pytest.raises(BootstrapError) as raised:
        HetznerCluster(
            n_workers=1,
            extra_packages=["scherbelberg-no-such-package-xyz==1.0"],
            **target.cluster_kwargs,
        )
    message = str(raised.value)
    assert "scherbelberg-no-such-package-xyz" in message  # the bootstrap's, not a firewall's
    assert "resource_in_use" not in message
    assert target.leftovers() == []
