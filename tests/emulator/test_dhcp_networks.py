"""Must show 3: private networks as on Hetzner. A member gets its address by DHCP (a /32, in
the guest's own lease file) after boot, members reach each other through the gateway, others
cannot; a NIC plugged into a running server is configured too. And the product's worker wrapper
retries a DHCP try that failed, which Hetzner's images do not."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Iterator

import pytest
from hcloud import Client
from hcloud.networks import BoundNetwork, NetworkSubnet
from hcloud.servers import BoundServer

from scherbelberg.bootstrap.cloud_config import NodeConfig, NodeTls, worker_wrapper
from scherbelberg.bootstrap.env import EnvSpec
from scherbelberg.emulator.control import LocalHetzner
from tests.conftest import public_ip
from tests.emulator.conftest import create_server, must, private_ip
from tests.machines import Keys, ssh_run

pytestmark = pytest.mark.machines

NIC = "enp7s0"  # the first private NIC of a cx23 (Hetzner's naming of CX*2 and later types)
GATEWAY = "10.0.0.1"  # the network's first address
PING = "ping -c 1 -W 2 {ip} >/dev/null && echo reachable || echo unreachable"
# the TTL of an answer: 64 minus one for each router on the way
PING_TTL = "ping -c 1 -W 2 {ip} | sed -n 's/.* ttl=\\([0-9]*\\).*/\\1/p'"
TCP = (
    "python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], 22), 3).close();"
    ' print("open")\' {ip} 2>/dev/null || echo closed'
)
# seconds from the guest's first journal line of this boot to its DHCP client's "bound to"
BOOT_TO_ADDRESS = (
    "b=$(journalctl -b -o short-unix -q | head -n 1 | cut -d' ' -f1);"
    " a=$(journalctl -b -o short-unix -q -u hc-net-ifup@{nic}.service | grep 'bound to'"
    " | head -n 1 | cut -d' ' -f1); echo \"$a $b\" | awk '{{print $1 - $2}}'"
)


def network(client: Client, name: str) -> BoundNetwork:
    return client.networks.create(
        name=name,
        ip_range="10.0.0.0/16",
        subnets=[NetworkSubnet(type="cloud", ip_range="10.0.1.0/24", network_zone="eu-central")],
    )


def create(
    client: Client, keys: Keys, names: dict[str, list[BoundNetwork]], user_data: str | None = None
) -> dict[str, BoundServer]:
    key = client.ssh_keys.create(name=f"k-{time.monotonic_ns()}", public_key=keys.client_public)
    responses = {
        name: create_server(
            client,
            name,
            wait=False,  # all boot at once
            ssh_keys=[key],
            networks=list(networks),
            user_data=user_data or keys.cloud_config(),
        )
        for name, networks in names.items()
    }
    for response in responses.values():
        for action in [response.action, *response.next_actions]:
            action.wait_until_finished()
    return {name: client.servers.get_by_id(must(r.server.id)) for name, r in responses.items()}


async def address_on(host: str, keys: Keys, nic: str, deadline: float = 60.0) -> str:
    """The guest's `ip -4 -o addr` line of `nic` once DHCP put an address there."""
    give_up = time.monotonic() + deadline
    while True:
        line = await ssh_run(host, keys, f"ip -4 -o addr show dev {nic} 2>&1 || true")
        if " inet " in line or time.monotonic() > give_up:
            return line.strip()
        await asyncio.sleep(0.5)


def test_members_get_dhcp_addresses_and_reach_each_other_through_the_gateway(
    hcloud_client: Client,
) -> None:
    keys = Keys.generate()
    net = network(hcloud_client, "private")
    servers = create(hcloud_client, keys, {"a": [net], "b": [net], "outsider": []})
    public = {name: public_ip(s) for name, s in servers.items()}
    ip_a, ip_b = (private_ip(servers[n]) for n in ("a", "b"))
    mac_a = must(servers["a"].private_net)[0].mac_address

    async def check() -> None:
        # the guest configured its NIC itself, by DHCP: a /32 and the lease in its own file
        line = await address_on(public["a"], keys, NIC)
        assert f"inet {ip_a}/32" in line, line
        lease = await ssh_run(public["a"], keys, f"cat /var/lib/dhcp/dhclient.{NIC}.leases")
        assert f"fixed-address {ip_a};" in lease
        assert "option subnet-mask 255.255.255.255;" in lease
        link = await ssh_run(public["a"], keys, f"ip -o link show dev {NIC}")
        assert f"link/ether {mac_a} " in link and mac_a.startswith("86:00:00:")
        seconds = await ssh_run(public["a"], keys, BOOT_TO_ADDRESS.format(nic=NIC))
        print(f"boot to private address (guest's journal): {float(seconds):.2f} s")
        # routes from option 121: the gateway on-link, the network through it
        routes = await ssh_run(public["a"], keys, f"ip -4 route show dev {NIC}")
        assert f"{GATEWAY} scope link" in routes and f"10.0.0.0/16 via {GATEWAY}" in routes
        await address_on(public["b"], keys, NIC)
        route = await ssh_run(public["a"], keys, f"ip route get {ip_b}")
        assert f"via {GATEWAY} dev {NIC}" in route
        # the gateway answers; the peer too, one router away; TCP gets through
        assert (await ssh_run(public["a"], keys, PING.format(ip=GATEWAY))).strip() == "reachable"
        assert (await ssh_run(public["a"], keys, PING_TTL.format(ip=ip_b))).strip() == "63"
        assert (await ssh_run(public["b"], keys, PING_TTL.format(ip=ip_a))).strip() == "63"
        assert (await ssh_run(public["a"], keys, TCP.format(ip=ip_b))).strip() == "open"
        # a server outside the network has no way in
        out = public["outsider"]
        assert (await ssh_run(out, keys, PING.format(ip=ip_a))).strip() == "unreachable"
        assert (await ssh_run(out, keys, TCP.format(ip=ip_a))).strip() == "closed"

    asyncio.run(check())

    # plugged into the running outsider (the API's attach action): its guest configures it
    hcloud_client.servers.attach_to_network(servers["outsider"], net).wait_until_finished()
    ip_c = private_ip(hcloud_client.servers.get_by_id(must(servers["outsider"].id)))

    async def hotplug() -> None:
        line = await address_on(public["outsider"], keys, NIC)
        assert f"inet {ip_c}/32" in line, line
        ttl = await ssh_run(public["outsider"], keys, PING_TTL.format(ip=ip_a))
        assert ttl.strip() == "63"

    asyncio.run(hotplug())
    hcloud_client.servers.detach_from_network(servers["outsider"], net).wait_until_finished()

    async def unplugged() -> None:
        links = await ssh_run(public["outsider"], keys, "ip -o link show")
        assert NIC not in links
        assert (await ssh_run(public["a"], keys, PING.format(ip=ip_c))).strip() == "unreachable"

    asyncio.run(unplugged())

    # a reboot finds the NIC as a real boot does, without address, and asks DHCP again
    boot_id = "cat /proc/sys/kernel/random/boot_id"
    old_boot = asyncio.run(ssh_run(public["b"], keys, boot_id))
    hcloud_client.servers.reboot(servers["b"]).wait_until_finished()

    async def rebooted() -> None:
        # the new boot itself: `journalctl -b` on the old one would show its own lease
        give_up = time.monotonic() + 180
        while await ssh_run(public["b"], keys, boot_id, deadline=180) == old_boot:
            assert time.monotonic() < give_up, "server b did not come back from its reboot"
            await asyncio.sleep(1)
        bound = f"journalctl -b -q -u hc-net-ifup@{NIC}.service | grep -c 'bound to' || true"
        give_up = time.monotonic() + 90
        while (await ssh_run(public["b"], keys, bound)).strip() in ("", "0"):
            if time.monotonic() > give_up:
                why = (
                    "journalctl -b --no-pager | tail -n 40; ip -4 -o addr; journalctl --list-boots"
                )
                raise AssertionError(await ssh_run(public["b"], keys, why))
            await asyncio.sleep(1)
        assert f"inet {ip_b}/32" in await address_on(public["b"], keys, NIC)

    asyncio.run(rebooted())


@pytest.fixture
def lost_first_try(local_hetzner: LocalHetzner) -> Iterator[float]:
    """Servers named `retry-*` lose their first DHCP try: no answer for 20 s."""
    seconds = 20.0
    local_hetzner.control.update_faults(dhcp_first_try_lost="^retry-", dhcp_try_seconds=seconds)
    yield seconds
    local_hetzner.control.update_faults(dhcp_first_try_lost=None, dhcp_try_seconds=60.0)


def test_the_worker_wrapper_retries_a_failed_dhcp_try(
    hcloud_client: Client, lost_first_try: float
) -> None:
    """The image tries once (hc-utils' one-shot dhclient) and gives up; the wrapper tries again.

    The guest's dhclient gives up after 12 s here instead of Debian's 60 s (a line in its
    dhclient.conf from the user data), so the test waits less; the network's DHCP server stays
    silent for longer than that try."""
    keys = Keys.generate()
    net = network(hcloud_client, "retry")
    short_try = {"path": "/etc/dhcp/dhclient.conf", "append": True, "content": "timeout 12;\n"}
    user_data = keys.cloud_config(write_files=[short_try])
    server = create(hcloud_client, keys, {"retry-worker": [net]}, user_data)["retry-worker"]
    host, ip = public_ip(server), private_ip(server)
    node = NodeConfig(
        role="worker",
        name="retry-worker",
        env=EnvSpec(method="pip", python="3.11", pins=(), prefix="/opt/env"),
        tls=NodeTls("", "", ""),
        host_key_private="",
        host_key_public="",
        private_cidr=str(ipaddress.IPv4Network("10.0.0.0/16")),
    )
    wrapper = worker_wrapper(node)

    async def check() -> None:
        # the image's single try fails, and nothing in the image tries again
        state = (
            "systemctl is-failed --quiet hc-net-ifup@{nic}.service && echo failed || echo waiting"
        )
        give_up = time.monotonic() + 60
        while (await ssh_run(host, keys, state.format(nic=NIC))).strip() != "failed":
            assert time.monotonic() < give_up, "the guest's DHCP try did not fail"
            await asyncio.sleep(1)
        assert "inet " not in await ssh_run(host, keys, f"ip -4 -o addr show dev {NIC}")
        # the wrapper finds no address, asks DHCP again, and runs the worker on the address
        install = (
            f"cat > /tmp/wrapper <<'EOF'\n{wrapper}EOF\nchmod +x /tmp/wrapper\n"
            "mkdir -p /opt/env/bin /var/lib/scherbelberg\n"
            "ln -sf /usr/bin/python3 /opt/env/bin/python"
        )
        await ssh_run(host, keys, install)
        started = time.monotonic()
        out = await ssh_run(host, keys, "timeout 50 /tmp/wrapper echo worker tls://x:8786 2>&1")
        took = time.monotonic() - started
        print(f"wrapper: address after {took:.1f} s:\n{out}")
        assert re.search(rf"DHCP again on {NIC}\b", out), out
        assert out.strip().endswith(
            f"worker --host {ip} --dashboard-address {ip}:0 tls://x:8786"
        ), out
        lease = await ssh_run(host, keys, f"cat /var/lib/dhcp/dhclient.{NIC}.leases")
        assert f"fixed-address {ip};" in lease
        # the DHCP client outlives the wrapper (it renews the lease): a unit of its own
        unit = await ssh_run(host, keys, f"systemctl is-active scherbelberg-dhcp-{NIC}.service")
        assert unit.strip() == "active"

    asyncio.run(check())
