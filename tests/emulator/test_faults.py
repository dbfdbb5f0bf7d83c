"""Must show 6: injected faults look exactly like Hetzner's own failures."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from hcloud import APIException, Client
from hcloud.actions import ActionFailedException
from hcloud.images import Image
from hcloud.server_types import ServerType

from scherbelberg.emulator.control import LocalHetzner
from tests.emulator.conftest import create_server, must


@pytest.fixture
def faults(local_hetzner: LocalHetzner, project_token: str) -> Iterator[LocalHetzner]:
    """Faults for one test; cleared before the project's own cleanup runs."""
    yield local_hetzner
    local_hetzner.control.clear_faults()


def _get(hetzner: LocalHetzner, token: str, path: str) -> requests.Response:
    return requests.get(
        hetzner.endpoint + path, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


@pytest.mark.parametrize(
    ("status", "code"), [(429, "rate_limit_exceeded"), (503, "unavailable"), (502, "bad_gateway")]
)
def test_http_faults_have_hetzner_envelopes(
    faults: LocalHetzner, project_token: str, status: int, code: str
) -> None:
    faults.control.set_faults({"http": [{"path": "^/ssh_keys$", "status": status, "count": 1}]})
    response = _get(faults, project_token, "/ssh_keys")
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "details" in body["error"]
    assert response.headers["X-Correlation-Id"]
    for header in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
        assert response.headers[header].isdigit()
    # count=1: the next request is served again
    assert _get(faults, project_token, "/ssh_keys").status_code == 200
    # other paths were never affected
    assert _get(faults, project_token, "/locations").status_code == 200


def test_hcloud_retries_injected_429_and_surfaces_503(
    faults: LocalHetzner, hcloud_client: Client
) -> None:
    faults.control.set_faults({"http": [{"path": "^/networks$", "status": 429, "count": 1}]})
    started = time.monotonic()
    assert hcloud_client.networks.get_all() == []  # retried after a backoff, then served
    assert time.monotonic() - started < 30
    faults.control.set_faults({"http": [{"path": "^/networks$", "status": 503}]})
    with pytest.raises(APIException) as raised:
        hcloud_client.networks.get_all()
    assert raised.value.code == "unavailable"
    assert raised.value.correlation_id


def test_failing_action_reports_error(faults: LocalHetzner, hcloud_client: Client) -> None:
    faults.control.set_faults({"failing_actions": {"create_server": 1.0}})
    response = hcloud_client.servers.create(
        name="doomed", server_type=ServerType(name="cx23"), image=Image(name="debian-12")
    )
    with pytest.raises(ActionFailedException):
        response.action.wait_until_finished()
    action = hcloud_client.actions.get_by_id(response.action.id)
    assert action.status == "error"
    assert action.error is not None and action.error["code"] == "action_failed"
    # the start that was to follow fails too, and the server is left off, not running
    with pytest.raises(ActionFailedException):
        response.next_actions[0].wait_until_finished()
    assert hcloud_client.servers.get_by_id(must(response.server.id)).status == "off"


def test_stuck_initializing_and_unavailable(faults: LocalHetzner, hcloud_client: Client) -> None:
    faults.control.set_faults({"stuck_initializing": "^stuck-", "unavailable": [["cx33", "nbg1"]]})
    response = hcloud_client.servers.create(
        name="stuck-1", server_type=ServerType(name="cx23"), image=Image(name="debian-12")
    )
    # a server created after it, with the same latency, finishes: the stuck one would have too
    create_server(hcloud_client, "fine-1")
    assert hcloud_client.servers.get_by_id(must(response.server.id)).status == "initializing"
    assert hcloud_client.actions.get_by_id(response.action.id).status == "running"
    with pytest.raises(APIException) as raised:
        hcloud_client.servers.create(
            name="sold-out",
            server_type=ServerType(name="cx33"),
            image=Image(name="debian-12"),
            location=hcloud_client.locations.get_by_name("nbg1"),
        )
    assert raised.value.code == "resource_unavailable"
    assert sorted(must(s.name) for s in hcloud_client.servers.get_all()) == ["fine-1", "stuck-1"]


def test_killed_machine_turns_server_off(faults: LocalHetzner, hcloud_client: Client) -> None:
    server_id = must(create_server(hcloud_client, "victim").server.id)
    assert faults.control.server(server_id)["machine_running"] is True
    faults.control.kill(server_id)
    deadline = time.monotonic() + 30
    while hcloud_client.servers.get_by_id(server_id).status != "off":
        assert time.monotonic() < deadline, "server still not off after its machine died"
        time.sleep(0.5)
    assert faults.control.server(server_id)["machine_running"] is False
    # and it can be powered on again, like a server whose host failed
    hcloud_client.servers.power_on(hcloud_client.servers.get_by_id(server_id)).wait_until_finished()
    assert hcloud_client.servers.get_by_id(server_id).status == "running"
    assert faults.control.server(server_id)["machine_running"] is True
