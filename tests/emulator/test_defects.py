"""Emulator defects found by running real Hetzner clients against it (issue 9), one test each.

No machines needed: they run on an API-only local Hetzner (tests/emulator/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from hcloud import APIException, Client
from hcloud.firewalls import FirewallResource, FirewallResourceLabelSelector, FirewallRule
from hcloud.images import Image
from hcloud.networks import Network, NetworkSubnet
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer

from scherbelberg.emulator.control import LocalHetzner
from tests.emulator.conftest import create_server, must


def make_server(client: Client, name: str, **kwargs: Any) -> BoundServer:
    return create_server(client, name, **kwargs).server


# ---------------------------------------------------------------------------- 1. no subnet


def test_server_without_subnet_in_its_zone_creates_nothing(api_client: Client) -> None:
    client = api_client
    network = client.networks.create(
        name="us-only",
        ip_range="10.0.0.0/16",
        subnets=[NetworkSubnet(type="cloud", ip_range="10.0.1.0/24", network_zone="us-east")],
    )
    with pytest.raises(APIException) as info:
        client.servers.create(
            name="orphan",
            server_type=ServerType(name="cx23"),
            image=Image(name="debian-12"),
            networks=[network],
        )
    assert info.value.code == "no_subnet_available"
    assert client.servers.get_all() == []
    assert client.networks.get_by_id(must(network.id)).servers == []
    # the name is still free
    server = make_server(client, "orphan")
    assert server.name == "orphan"
    assert [s.name for s in client.servers.get_all()] == ["orphan"]


# ---------------------------------------------------------------------------- 2. backup images


def test_backup_image_of_server_without_backups_is_refused(api_client: Client) -> None:
    client = api_client
    server = make_server(client, "no-backups")
    with pytest.raises(APIException) as info:
        client.servers.create_image(server, type="backup", description="nope")
    assert info.value.code == "invalid_input"
    assert client.images.get_all(type=["backup"]) == []
    # a snapshot is still fine, and outlives its server
    snapshot = client.servers.create_image(server, type="snapshot", description="keep")
    snapshot.action.wait_until_finished()
    client.servers.delete(server).wait_until_finished()
    assert [i.description for i in client.images.get_all(type=["snapshot", "backup"])] == ["keep"]


# ---------------------------------------------------------------------------- 3. label selectors


def test_removing_label_selected_firewall_from_one_server(api_client: Client) -> None:
    client = api_client
    server = make_server(client, "selected", labels={"role": "worker"})
    firewall = client.firewalls.create(
        name="by-label",
        rules=[FirewallRule(direction="in", protocol="tcp", port="22", source_ips=["0.0.0.0/0"])],
        resources=[
            FirewallResource(
                type="label_selector",
                label_selector=FirewallResourceLabelSelector(selector="role=worker"),
            )
        ],
    ).firewall
    with pytest.raises(APIException) as info:
        client.firewalls.remove_from_resources(
            firewall, [FirewallResource(type="server", server=server)]
        )
    assert info.value.code == "firewall_managed_by_label_selector"
    # a server the firewall does not cover at all is still "already removed"
    other = make_server(client, "unselected", labels={"role": "scheduler"})
    with pytest.raises(APIException) as info:
        client.firewalls.remove_from_resources(
            firewall, [FirewallResource(type="server", server=other)]
        )
    assert info.value.code == "firewall_already_removed"
    # the selector itself can be removed
    for action in client.firewalls.remove_from_resources(
        firewall,
        [
            FirewallResource(
                type="label_selector",
                label_selector=FirewallResourceLabelSelector(selector="role=worker"),
            )
        ],
    ):
        action.wait_until_finished()
    assert client.firewalls.get_by_id(must(firewall.id)).applied_to == []


# ---------------------------------------------------------------------------- 4. action lists


def test_per_resource_action_lists(api_client: Client) -> None:
    client = api_client
    created = client.servers.create(
        name="acting", server_type=ServerType(name="cx23"), image=Image(name="debian-12")
    )
    created.action.wait_until_finished()
    network = client.networks.create(name="acting-net", ip_range="10.2.0.0/16")
    client.networks.add_subnet(
        network, NetworkSubnet(type="cloud", ip_range="10.2.1.0/24", network_zone="eu-central")
    ).wait_until_finished()
    firewall = client.firewalls.create(name="acting-fw").firewall
    for action in client.firewalls.apply_to_resources(
        firewall, [FirewallResource(type="server", server=created.server)]
    ):
        action.wait_until_finished()
    image = client.servers.create_image(created.server, description="acting-image")
    image.action.wait_until_finished()

    server_actions = client.servers.actions.get_all()
    assert created.action.id in {a.id for a in server_actions}
    assert all(any(r["type"] == "server" for r in must(a.resources)) for a in server_actions)
    assert {a.command for a in client.networks.actions.get_all()} == {"add_subnet"}
    assert {a.command for a in client.firewalls.actions.get_all()} == {"apply_firewall"}
    assert [a.command for a in client.images.actions.get_all()] == ["create_image"]

    by_id = client.servers.actions.get_by_id(created.action.id)
    assert by_id.command == "create_server"
    with pytest.raises(APIException) as info:
        client.networks.actions.get_by_id(created.action.id)
    assert info.value.code == "not_found"

    # the spec's query parameters: status, sort, id, pagination
    assert client.servers.actions.get_all(status=["running"]) == []
    ids = [a.id for a in client.servers.actions.get_all(sort=["id:desc"])]
    assert ids == sorted(ids, reverse=True) and len(ids) >= 3
    page = client.servers.actions.get_list(page=1, per_page=1)
    assert len(page.actions) == 1 and must(page.meta.pagination).total_entries == len(ids)


def test_per_resource_action_list_over_http(api_hetzner: LocalHetzner) -> None:
    project_token = api_hetzner.control.new_project()
    client = Client(project_token, api_endpoint=api_hetzner.endpoint, poll_interval=0.05)
    created = client.servers.create(
        name="http", server_type=ServerType(name="cx23"), image=Image(name="debian-12")
    )
    created.action.wait_until_finished()
    headers = {"Authorization": f"Bearer {project_token}"}
    url = f"{api_hetzner.endpoint}/servers/actions"
    answer = requests.get(url, params={"id": created.action.id}, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert [a["id"] for a in answer.json()["actions"]] == [created.action.id]
    answer = requests.get(url, params={"sort": "name"}, headers=headers, timeout=10)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_input"
    answer = requests.get(url, params={"id": "x"}, headers=headers, timeout=10)
    assert answer.status_code == 422


def test_one_resource_action_lists(api_hetzner: LocalHetzner) -> None:
    """GET /{networks,firewalls,images}/{id}/actions[/{action_id}] (servers had them)."""
    token = api_hetzner.control.new_project()
    client = Client(token, api_endpoint=api_hetzner.endpoint, poll_interval=0.05)
    server = make_server(client, "one")
    network = client.networks.create(name="one-net", ip_range="10.3.0.0/16")
    other = client.networks.create(name="other-net", ip_range="10.4.0.0/16")
    add = client.networks.add_subnet(
        network, NetworkSubnet(type="cloud", ip_range="10.3.1.0/24", network_zone="eu-central")
    )
    add.wait_until_finished()
    firewall = client.firewalls.create(name="one-fw").firewall
    applied = client.firewalls.apply_to_resources(
        firewall, [FirewallResource(type="server", server=server)]
    )
    image = client.servers.create_image(server, description="one-image")
    image.action.wait_until_finished()

    assert [a.id for a in client.networks.get_actions(network)] == [add.id]
    assert client.networks.get_actions(other) == []
    assert [a.id for a in client.firewalls.get_actions(firewall)] == [a.id for a in applied]
    assert [a.command for a in client.images.get_actions(image.image)] == ["create_image"]
    assert client.networks.actions.get_by_id(add.id).command == "add_subnet"
    system = client.images.get_by_name_and_architecture("debian-12", "x86")
    assert system is not None and client.images.get_actions(system) == []
    with pytest.raises(APIException) as info:
        client.networks.get_actions(Network(id=999_999_999))
    assert info.value.code == "not_found"
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{api_hetzner.endpoint}/networks/{network.id}/actions"
    answer = requests.get(f"{base}/{add.id}", headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.json()["action"]["id"] == add.id
    answer = requests.get(f"{base}/{image.action.id}", headers=headers, timeout=10)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


# ------------------------------------------------------- a non-ASCII digit as a resource id


@pytest.mark.parametrize("raw", ["%C2%B2", "%D9%A3", "12%C2%B2"])  # "²", Arabic-Indic "3"
def test_an_id_of_other_digits_is_not_found_not_a_server_error(
    api_hetzner: LocalHetzner, raw: str
) -> None:
    """Found by the OpenAPI sweep: str.isdigit() takes "²" for a digit, int() does not, so
    POST /servers/²/actions/... answered 500 instead of Hetzner's 404 not_found."""
    token = api_hetzner.control.new_project()
    headers = {"Authorization": f"Bearer {token}"}
    for method, path in (("GET", f"/servers/{raw}"), ("POST", f"/servers/{raw}/actions/poweron")):
        answer = requests.request(method, api_hetzner.endpoint + path, headers=headers, timeout=10)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "not_found"
