"""Must show 2: responses of the local Hetzner conform to Hetzner's OpenAPI spec.

Schemathesis generates requests from the spec for every endpoint the emulator implements and
checks status codes, content types and response bodies against the spec's schemas.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hcloud import Client
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from scherbelberg.emulator.control import LocalHetzner
from tests.conftest import delete_everything
from tests.emulator.conftest import cloud_network, create_server, must, ssh_firewall
from tests.machines import Keys
from tests.spec import load_spec

IMPLEMENTED = (
    r"^/(servers|actions|ssh_keys|networks|firewalls|placement_groups|server_types|images"
    r"|locations|datacenters|pricing)(/|$)"
)
# server actions the emulator implements (others answer not_found, documented)
SERVER_ACTIONS = (
    r"^/servers/\{id\}/actions/"
    r"(poweron|poweroff|shutdown|reboot|reset|create_image|attach_to_network|detach_from_network)$"
)
OTHER_SERVER_ACTIONS = r"^/servers/\{id\}/actions/[a-z_]+$"

schema = (
    schemathesis.openapi.from_dict(load_spec())
    .include(path_regex=IMPLEMENTED)
    .exclude(path_regex=OTHER_SERVER_ACTIONS)
)
server_actions = schemathesis.openapi.from_dict(load_spec()).include(path_regex=SERVER_ACTIONS)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def populated(local_hetzner: LocalHetzner) -> Iterator[tuple[str, str, dict[str, int]]]:
    """A project holding one of everything, so list and get responses carry real objects."""
    # small limits: generated bodies can never create much
    token = local_hetzner.control.new_project(servers=3, snapshots=2, requests_per_hour=1_000_000)
    client = Client(token, api_endpoint=local_hetzner.endpoint, poll_interval=0.2)
    key = client.ssh_keys.create(name="key", public_key=Keys.generate().client_public)
    network = cloud_network(client, "net", "10.1.0.0/16", "10.1.0.0/24")
    firewall = ssh_firewall(client, "fw")
    group = client.placement_groups.create(name="pg", type="spread").placement_group
    created = create_server(
        client,
        "conformance",
        ssh_keys=[key],
        networks=[network],
        firewalls=[firewall],
        placement_group=group,
        labels={"a": "b"},
    )
    snapshot = client.servers.create_image(created.server, description="snap")
    snapshot.action.wait_until_finished()
    ids = {
        "ssh_key": must(key.id),
        "network": must(network.id),
        "firewall": must(firewall.id),
        "placement_group": must(group.id),
        "server": must(created.server.id),
        "image": must(snapshot.image.id),
        "action": must(created.action.id),
    }
    yield local_hetzner.endpoint, token, ids
    delete_everything(client)


@pytest.fixture(scope="module")
def api(populated: tuple[str, str, dict[str, int]]) -> tuple[str, dict[str, str]]:
    endpoint, token, _ = populated
    return endpoint, {"Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(
    # per operation; 25 took 6 s more of the fast tier and found nothing 10 did not. Draws
    # differ per run: a failure here is a real emulator defect (e.g. test_defects.py's ids)
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_responses_conform(case: schemathesis.Case, api: tuple[str, dict[str, str]]) -> None:
    base_url, headers = api
    case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)


@server_actions.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_server_action_responses_conform(
    case: schemathesis.Case, api: tuple[str, dict[str, str]]
) -> None:
    base_url, headers = api
    case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)


GET_BY_ID = {
    "/ssh_keys/{id}": "ssh_key",
    "/networks/{id}": "network",
    "/firewalls/{id}": "firewall",
    "/placement_groups/{id}": "placement_group",
    "/servers/{id}": "server",
    "/images/{id}": "image",
    "/actions/{id}": "action",
    "/servers/{id}/actions": "server",
}
LISTS = [
    "/ssh_keys",
    "/networks",
    "/firewalls",
    "/placement_groups",
    "/servers",
    "/images",
    "/server_types",
    "/locations",
    "/datacenters",
    "/pricing",
]


@pytest.mark.parametrize("path", sorted(GET_BY_ID))
def test_real_objects_conform(path: str, populated: tuple[str, str, dict[str, int]]) -> None:
    """Every object the emulator renders, fetched by id, validates against the spec."""
    endpoint, token, ids = populated
    case = schema[path]["GET"].Case(path_parameters={"id": ids[GET_BY_ID[path]]})
    response = case.call_and_validate(
        base_url=endpoint, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
    )
    assert response.status_code == 200


@pytest.mark.parametrize("path", LISTS)
def test_real_lists_conform(path: str, populated: tuple[str, str, dict[str, int]]) -> None:
    endpoint, token, _ = populated
    response = (
        schema[path]["GET"]
        .Case()
        .call_and_validate(
            base_url=endpoint, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
        )
    )
    assert response.status_code == 200
    body = response.json()
    if path != "/pricing":
        key = path.strip("/")
        assert body[key], f"{path} should list the populated project's objects"
