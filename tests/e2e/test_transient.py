"""Issue 9: transient API errors are waited out where Hetzner's own clients retry them. One
503 on the action poll fails no node; 5xx while deleting does not leave the network, firewall,
key or placement groups behind."""

from __future__ import annotations

import pytest
from distributed import Client

from scherbelberg import HetznerCluster
from tests.e2e.conftest import Target


def test_one_failed_poll_or_delete_is_waited_out(target: Target) -> None:
    if target.control is None:
        pytest.skip("needs the local Hetzner's fault injection")
    control = target.control
    # a single 503 on the action poll while the servers are created
    control.set_faults({"http": [{"path": "^/actions", "status": 503, "count": 1}]})
    try:
        with HetznerCluster(n_workers=1, **target.cluster_kwargs) as cluster:
            with Client(cluster) as client:
                assert client.submit(sum, [1, 2]).result() == 3
            # and while closing: each kind of infrastructure answers 500 once, then 503
            control.set_faults(
                {
                    "http": [
                        {"path": f"^/{kind}/", "method": "DELETE", "status": status, "count": 1}
                        for kind in ("firewalls", "networks", "placement_groups", "ssh_keys")
                        for status in (500, 503)
                    ]
                }
            )
    finally:
        control.clear_faults()
    assert target.leftovers() == []
