"""Must show 4: Hetzner firewall rules are enforced with real packet filtering."""

from __future__ import annotations

import asyncio

import pytest
from hcloud import Client
from hcloud.firewalls import FirewallResource, FirewallRule

from scherbelberg.emulator.control import LocalHetzner
from tests.conftest import public_ip
from tests.emulator.conftest import create_server, ssh_firewall
from tests.machines import Keys, ssh_run, tcp_probe

pytestmark = pytest.mark.machines  # real servers, reached over ssh


def test_only_ssh_from_this_host_gets_through(
    hcloud_client: Client, local_hetzner: LocalHetzner
) -> None:
    info = local_hetzner.control.info()
    me = info["client_address"]
    keys = Keys.generate()
    key = hcloud_client.ssh_keys.create(name="k", public_key=keys.client_public)
    firewall = ssh_firewall(hcloud_client, "ssh-from-me", f"{me}/32")
    # a web server on 8080 that really listens, so a timeout can only be the firewall
    user_data = keys.cloud_config(
        runcmd=[["systemd-run", "--unit=probe-web", "python3", "-m", "http.server", "8080"]]
    )
    response = create_server(
        hcloud_client, "walled", ssh_keys=[key], firewalls=[firewall], user_data=user_data
    )
    ip = public_ip(response.server)

    async def listening_inside() -> str:
        await ssh_run(ip, keys, "cloud-init status --wait", deadline=120)
        return await ssh_run(
            ip,
            keys,
            "for i in $(seq 50); do curl -s -o /dev/null -w '%{http_code}' "
            "http://127.0.0.1:8080/ && exit 0; sleep 0.2; done; exit 1",
        )

    assert asyncio.run(listening_inside()) == "200"
    assert tcp_probe(ip, 22) == "open"
    assert tcp_probe(ip, 8080, timeout=3) == "timeout"
    # from another host on the public network even SSH times out: the rule names only us
    assert info["outside_netns"]
    assert tcp_probe(ip, 22, timeout=3, netns=info["outside_netns"]) == "timeout"

    # opening 8080 to everyone through set_rules takes effect on the running machine
    for action in hcloud_client.firewalls.set_rules(
        firewall,
        [
            FirewallRule(direction="in", protocol="tcp", port="22", source_ips=[f"{me}/32"]),
            FirewallRule(
                direction="in", protocol="tcp", port="8000-8100", source_ips=["0.0.0.0/0"]
            ),
        ],
    ):
        action.wait_until_finished()
    assert tcp_probe(ip, 8080) == "open"
    assert tcp_probe(ip, 8080, netns=info["outside_netns"]) == "open"

    # and removing the firewall leaves the server open (no firewall = no filtering)
    for action in hcloud_client.firewalls.remove_from_resources(
        firewall, [FirewallResource(type="server", server=response.server)]
    ):
        action.wait_until_finished()
    assert tcp_probe(ip, 22, netns=info["outside_netns"]) == "open"
