"""Issue 9, must show 1 to 3: a cluster gets through Hetzner running out of server types —
with the 2026 EU shortage, with nothing left in its location, and when capacity goes between
the catalog read and the create."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from distributed import Client

from scherbelberg import HetznerCluster
from scherbelberg.errors import ConfigError
from scherbelberg.hetzner import capacity
from tests.e2e.conftest import Target, name_of


@pytest.fixture
def faults(target: Target) -> Iterator[Any]:
    if target.control is None:
        pytest.skip("needs the local Hetzner's availability faults")
    yield target.control
    target.control.clear_faults()


def servers(target: Target) -> dict[str, tuple[str, str]]:
    return {
        name_of(s, "server"): (
            name_of(s.server_type, "server type"),
            name_of(s.location, "location"),
        )
        for s in target.hcloud().servers.get_all()
    }


def test_the_2026_eu_shortage_gets_orderable_types(target: Target, faults: Any) -> None:
    faults.set_faults({"availability": "2026-eu-shortage"})
    with HetznerCluster(n_workers=2, **target.cluster_kwargs) as cluster, Client(cluster) as c:
        assert c.submit(sum, [1, 2]).result() == 3
        made = servers(target)
        assert len(made) == 3
        for server_type, location in made.values():
            assert not server_type.startswith(("cx", "cax")), made  # what could be had
            assert location == "fsn1"
    assert target.leftovers() == []


def test_nothing_left_in_the_location_means_a_neighbour(target: Target, faults: Any) -> None:
    faults.set_faults({"unavailable": [["*", "fsn1"]]})
    with HetznerCluster(n_workers=1, location="fsn1", **target.cluster_kwargs) as cluster:
        with Client(cluster) as c:
            assert c.submit(sum, [1, 2]).result() == 3
        locations = {location for _, location in servers(target).values()}
        assert len(locations) == 1 and locations != {"fsn1"}  # one location, of the zone
        assert locations <= {"nbg1", "hel1"}
    assert target.leftovers() == []


def test_a_named_type_that_cannot_be_had_is_one_line(target: Target, faults: Any) -> None:
    faults.set_faults({"unavailable": [["cx33", "*"]]})
    with pytest.raises(ConfigError) as raised:
        HetznerCluster(n_workers=1, worker_server_type="cx33", **target.cluster_kwargs)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("worker server type 'cx33' (argument worker_server_type=)")
    assert "types offered there: " in message and "cpx" in message  # the alternatives
    assert target.leftovers() == []


def test_capacity_gone_after_the_catalog_read_falls_back(
    target: Target, faults: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog said cx33 could be had; by the workers' create it cannot (412)."""
    read = capacity.load

    async def read_then_shortage(session: Any) -> capacity.Catalog:
        known = await read(session)
        faults.set_faults({"unavailable": [["cx33", "*"]]})
        return known

    monkeypatch.setattr(capacity, "load", read_then_shortage)
    kwargs = {**target.cluster_kwargs, "worker_server_type": ["cx33", "cpx32"]}
    with HetznerCluster(n_workers=2, **kwargs) as cluster, Client(cluster) as c:
        assert c.submit(sum, [1, 2]).result() == 3
        workers = [t for name, (t, _) in servers(target).items() if "-worker-" in name]
        assert workers == ["cpx32", "cpx32"]
        assert cluster.settings.worker_type.name == "cpx32"
    assert target.leftovers() == []
