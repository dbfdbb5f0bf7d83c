"""Must show 5: private networks connect their members, and only them."""

from __future__ import annotations

import asyncio

import pytest
from hcloud import Client

from tests.conftest import public_ip
from tests.emulator.conftest import cloud_network, create_server, must, private_ip
from tests.machines import Keys, ssh_run

pytestmark = pytest.mark.machines  # real servers, reached over ssh

PING = "ping -c 1 -W 2 {ip} >/dev/null && echo reachable || echo unreachable"
# the first private NIC of a cx23 is enp7s0; its address comes by DHCP a moment after boot
WAIT_DHCP = (
    "for i in $(seq 120); do ip -4 -o addr show dev enp7s0 | grep -q inet && exit 0; sleep 0.5;"
    " done; exit 1"
)


def test_members_reach_each_other_outsiders_do_not(hcloud_client: Client) -> None:
    keys = Keys.generate()
    key = hcloud_client.ssh_keys.create(name="k", public_key=keys.client_public)
    network = cloud_network(hcloud_client, "private", "10.20.0.0/16", "10.20.0.0/24")
    responses = {}
    for name, networks in (("inside-a", [network]), ("inside-b", [network]), ("outside", [])):
        responses[name] = create_server(
            hcloud_client,
            name,
            wait=False,  # all three boot at once
            ssh_keys=[key],
            networks=networks,
            user_data=keys.cloud_config(),
        )
    for response in responses.values():
        for action in [response.action, *response.next_actions]:
            action.wait_until_finished()
    servers = {
        name: hcloud_client.servers.get_by_id(must(r.server.id)) for name, r in responses.items()
    }
    public = {name: public_ip(s) for name, s in servers.items()}
    private_a = private_ip(servers["inside-a"])
    private_b = private_ip(servers["inside-b"])
    assert servers["outside"].private_net == []

    async def check() -> None:
        await asyncio.gather(*(ssh_run(ip, keys, "true") for ip in public.values()))
        # the members' guests configure their NICs by DHCP after boot
        await asyncio.gather(
            *(ssh_run(public[n], keys, WAIT_DHCP) for n in ("inside-a", "inside-b"))
        )
        a_to_b = await ssh_run(public["inside-a"], keys, PING.format(ip=private_b))
        b_to_a = await ssh_run(public["inside-b"], keys, PING.format(ip=private_a))
        out_to_b = await ssh_run(public["outside"], keys, PING.format(ip=private_b))
        addresses = await ssh_run(public["inside-a"], keys, "ip -4 -o addr show")
        assert a_to_b.strip() == "reachable"
        assert b_to_a.strip() == "reachable"
        assert out_to_b.strip() == "unreachable"
        assert f"enp7s0    inet {private_a}/32" in addresses

    asyncio.run(check())
