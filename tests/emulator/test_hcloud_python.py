"""Must show 1: hcloud-python 2.27, unmodified, drives a whole project on the local Hetzner."""

from __future__ import annotations

import hcloud
from hcloud import Client
from hcloud.firewalls import FirewallRule
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.server_types import ServerType

from scherbelberg.emulator.control import LocalHetzner
from tests.emulator.conftest import cloud_network, must, private_ip
from tests.machines import Keys


def test_full_project_lifecycle(
    hcloud_client: Client, local_hetzner: LocalHetzner, project_token: str
) -> None:
    client = hcloud_client
    keys = Keys.generate()
    key = client.ssh_keys.create(name="lab-key", public_key=keys.client_public)
    network = cloud_network(client, "lab-net", "10.0.0.0/16", "10.0.1.0/24")
    firewall = client.firewalls.create(
        name="lab-fw",
        rules=[
            FirewallRule(direction="in", protocol="tcp", port="22", source_ips=["0.0.0.0/0"]),
            FirewallRule(direction="in", protocol="icmp", source_ips=["0.0.0.0/0", "::/0"]),
        ],
    ).firewall
    group = client.placement_groups.create(name="lab-spread", type="spread").placement_group

    created = []
    for index in range(2):
        response = client.servers.create(
            name=f"lab-{index}",
            server_type=ServerType(name="cx23"),
            image=Image(name="debian-12"),
            location=Location(name="fsn1"),
            ssh_keys=[key],
            networks=[network],
            firewalls=[firewall],
            placement_group=group,
            labels={"app": "lab", "role": "worker" if index else "scheduler"},
            user_data=keys.cloud_config(runcmd=[["touch", f"/root/booted-{index}"]]),
        )
        assert response.server.status == "initializing"
        assert response.root_password is None  # an SSH key was given
        created.append(response)
    for response in created:
        response.action.wait_until_finished()
        for action in response.next_actions:
            action.wait_until_finished()
        assert response.action.status == "success"

    workers = client.servers.get_all(label_selector="app=lab,role=worker")
    assert [s.name for s in workers] == ["lab-1"]
    both = client.servers.get_all(label_selector="role in (worker,scheduler)")
    assert [s.name for s in both] == ["lab-0", "lab-1"]
    # the client's low-level request helper, for what its typed API does not expose (sort)
    raw = client.request(
        "GET", "/servers", params={"label_selector": "app=lab", "sort": "name:desc"}
    )
    assert [s["name"] for s in raw["servers"]] == ["lab-1", "lab-0"]
    for server in both:
        assert server.status == "running"
        assert must(server.server_type).name == "cx23"
        assert server.image is not None and server.image.name == "debian-12"
        assert must(server.private_net)[0].network.id == network.id
        assert private_ip(server).startswith("10.0.1.")
        assert must(must(server.public_net).firewalls)[0].firewall.id == firewall.id
        assert local_hetzner.control.server(must(server.id))["machine_running"] is True
    group_servers = must(client.placement_groups.get_by_id(must(group.id)).servers)
    assert sorted(group_servers) == sorted(must(s.id) for s in both)
    assert client.servers.get_all(label_selector="!app") == []

    for server in both:
        action = client.servers.delete(server)
        action.wait_until_finished()
        assert action.status == "success"
    client.firewalls.delete(firewall)
    client.networks.delete(network)
    client.placement_groups.delete(group)
    client.ssh_keys.delete(key)

    assert client.servers.get_all() == []
    assert client.networks.get_all() == []
    assert client.firewalls.get_all() == []
    assert client.placement_groups.get_all() == []
    assert client.ssh_keys.get_all() == []

    # every request above came from the hcloud-python release the project promises to work with
    # (the test extra pins it), not some other client
    seen = local_hetzner.control.requests(token=project_token)
    assert len(seen) > 20
    agents = {record["user_agent"] for record in seen}
    assert agents == {f"hcloud-python/{hcloud.__version__}"}, agents
    assert hcloud.__version__.startswith("2.27.")
