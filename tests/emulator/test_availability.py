"""Issue 9: a server type sold out in a location shows where Hetzner shows it — dropped from the
datacenter's `server_types.available` (kept in `supported`) and 412 `resource_unavailable` on
`POST /servers` — set at start and at run time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hcloud import APIException, Client
from hcloud.images import Image
from hcloud.server_types import ServerType

from scherbelberg.emulator.control import EmulatorError, LocalHetzner
from scherbelberg.emulator.model import static_catalog
from tests.emulator.conftest import api_only, must

EU = ("fsn1", "nbg1", "hel1")


def type_id(name: str) -> int:
    found = static_catalog.find_server_type(name)
    assert found is not None
    return found.id


def lists(client: Client, location: str) -> tuple[set[int], set[int], set[int]]:
    """supported, available, available_for_migration of the location's datacenter."""
    (dc,) = [d for d in client.datacenters.get_all() if must(d.location).name == location]
    types = must(dc.server_types)
    return (
        {must(t.id) for t in types.supported},
        {must(t.id) for t in types.available},
        {must(t.id) for t in types.available_for_migration},
    )


def create(client: Client, name: str, server_type: str, location: str) -> None:
    client.servers.create(
        name=name,
        server_type=ServerType(name=server_type),
        image=Image(name="debian-12"),
        location=client.locations.get_by_name(location),
    ).action.wait_until_finished()


def assert_unorderable(client: Client, server_type: str, location: str) -> None:
    supported, available, migration = lists(client, location)
    assert type_id(server_type) in supported
    assert type_id(server_type) not in available | migration
    before = [s.name for s in client.servers.get_all()]
    with pytest.raises(APIException) as raised:
        create(client, f"want-{server_type}-{location}", server_type, location)
    assert raised.value.code == "resource_unavailable"
    assert [s.name for s in client.servers.get_all()] == before  # nothing was made


def assert_orderable(client: Client, server_type: str, location: str) -> None:
    supported, available, _ = lists(client, location)
    assert type_id(server_type) in supported & available
    create(client, f"got-{server_type}-{location}", server_type, location)


@pytest.fixture(scope="module")
def started_short() -> Iterator[LocalHetzner]:
    with api_only(unavailable=["cx*@fsn1", "cpx22@nbg1"]) as hetzner:
        yield hetzner


def client_of(hetzner: LocalHetzner) -> Client:
    token = hetzner.control.new_project(requests_per_hour=10**6)
    return Client(token, api_endpoint=hetzner.endpoint, poll_interval=0.05)


def test_unavailable_at_start_with_globs(started_short: LocalHetzner) -> None:
    client = client_of(started_short)
    for name in ("cx23", "cx33", "cx53", "cx22"):
        assert_unorderable(client, name, "fsn1")
    assert_unorderable(client, "cpx22", "nbg1")
    assert_orderable(client, "cpx22", "fsn1")
    assert_orderable(client, "cx23", "nbg1")
    assert started_short.control.availability() == [("cpx22", "nbg1"), ("cx*", "fsn1")]


def test_status_of_post_servers_is_412(started_short: LocalHetzner) -> None:
    import requests

    token = started_short.control.new_project()
    answer = requests.post(
        started_short.endpoint + "/servers",
        json={"name": "s", "server_type": "cx23", "image": "debian-12", "location": "fsn1"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 412
    assert answer.json()["error"]["code"] == "resource_unavailable"


def test_2026_eu_shortage_profile() -> None:
    """CX and CAX unorderable in the EU locations, CPX orderable (hetzner-reality.md)."""
    with api_only(availability="2026-eu-shortage") as hetzner:
        client = client_of(hetzner)
        for location in EU:
            supported, available, _ = lists(client, location)
            for st in static_catalog.SERVER_TYPES:
                if not st.offered_in(location):
                    continue
                short = st.name.startswith(("cx", "cax")) and not st.name.startswith("cpx")
                assert st.id in supported
                assert (st.id in available) is not short, (st.name, location)
        assert_unorderable(client, "cx23", "fsn1")
        assert_unorderable(client, "cax11", "hel1")
        assert_orderable(client, "cpx22", "fsn1")
        assert_orderable(client, "ccx13", "nbg1")
        assert_orderable(client, "cpx22", "ash")  # outside the EU nothing changed


def test_availability_at_run_time_keeps_other_faults(api_hetzner: LocalHetzner) -> None:
    client = client_of(api_hetzner)
    control = api_hetzner.control
    control.update_faults(release_delay=3)
    try:
        assert control.set_unavailable("cx33@*") == [("cx33", "*")]
        for location in EU:
            assert_unorderable(client, "cx33", location)
        assert_orderable(client, "cx23", "fsn1")
        assert control.faults()["release_delay"] == 3  # only availability changed
        control.set_unavailable(profile="2026-eu-shortage")
        assert_unorderable(client, "cx23", "nbg1")
        assert_orderable(client, "cpx32", "hel1")
        assert control.set_unavailable() == []
        assert_orderable(client, "cx33", "hel1")
        # set_faults (the whole configuration) speaks the same language
        control.set_faults({"unavailable": ["cax*@nbg1"], "availability": "2026-eu-shortage"})
        assert ("cax*", "nbg1") in control.availability()
        assert_unorderable(client, "cx43", "hel1")
    finally:
        control.clear_faults()


def test_bad_availability_settings_are_refused(api_hetzner: LocalHetzner) -> None:
    control = api_hetzner.control
    with pytest.raises(EmulatorError, match="400"):
        control.set_unavailable(profile="2025-nothing")
    with pytest.raises(EmulatorError, match="TYPE@LOCATION"):
        control.set_unavailable("cx23")
    assert control.availability() == []


def test_server_type_locations_do_not_show_shortages(started_short: LocalHetzner) -> None:
    """The spec's `server_type_location` is {id, name, deprecation}: a shortage is not shown
    there. The emulator still sends `available` and `recommended` (hcloud-python 2.27 cannot
    build a ServerTypeLocation without them); they say only that the type is offered there."""
    client = client_of(started_short)
    cx23 = client.server_types.get_by_name("cx23")
    assert cx23 is not None and cx23.locations is not None
    fsn1 = next(loc for loc in cx23.locations if loc.location.name == "fsn1")
    assert fsn1.available is True
    assert type_id("cx23") not in lists(client, "fsn1")[1]
