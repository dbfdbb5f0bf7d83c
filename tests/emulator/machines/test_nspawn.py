"""The nspawn backend alone, with real machines: boot, cloud-init, SSH, private networks,
firewalls, the machine lifecycle, snapshots, and that nothing is left afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
import yaml

from scherbelberg.emulator.machines import cleanup
from scherbelberg.emulator.machines.base import (
    FirewallPolicy,
    FirewallRule,
    MachineSpec,
    PrivateAttachment,
)
from scherbelberg.emulator.machines.nspawn import NspawnBackend, missing_requirements

pytestmark = [
    pytest.mark.machines,
    pytest.mark.skipif(bool(missing_requirements()), reason="; ".join(missing_requirements())),
]

SYSTEM_IMAGE = 1
NET = ipaddress.IPv4Network("10.0.0.0/16")


def attachment(network_id: int, ip: str) -> PrivateAttachment:
    return PrivateAttachment(network_id, ipaddress.IPv4Address(ip), NET, NET.network_address + 1)


class Keys:
    """A client key for root and a host key that cloud-init installs (so we can pin it)."""

    def __init__(self) -> None:
        self.client = asyncssh.generate_private_key("ssh-ed25519")
        self.host = asyncssh.generate_private_key("ssh-ed25519")

    @property
    def client_public(self) -> str:
        return self.client.export_public_key().decode().strip()

    def user_data(self, extra: dict[str, object] | None = None) -> str:
        cfg: dict[str, object] = {
            "ssh_keys": {
                "ed25519_private": self.host.export_private_key("openssh").decode(),
                "ed25519_public": self.host.export_public_key().decode().strip(),
            },
            **(extra or {}),
        }
        return "#cloud-config\n" + yaml.safe_dump(cfg)


async def ssh(
    keys: Keys, ip: ipaddress.IPv4Address, timeout: float = 30
) -> asyncssh.SSHClientConnection:
    """Connect as root, accepting only the pinned host key; retry until the machine is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncssh.connect(
                str(ip),
                username="root",
                client_keys=[keys.client],
                known_hosts=([keys.host.convert_to_public()], [], []),
                connect_timeout=3,
            )
        except (TimeoutError, OSError, asyncssh.Error):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def wait_cloud_init(conn: asyncssh.SSHClientConnection) -> None:
    r = await asyncio.wait_for(conn.run("cloud-init status --wait", check=False), 60)
    assert "done" in str(r.stdout), (r.stdout, r.stderr)


async def private_address(conn: asyncssh.SSHClientConnection, nic: str, timeout: float = 30) -> str:
    """The address the guest's DHCP client put on its private NIC (`ip -4 -o addr` line)."""
    deadline = time.monotonic() + timeout
    while True:
        r = await conn.run(f"ip -4 -o addr show dev {nic}", check=False)
        if "inet " in str(r.stdout) or time.monotonic() > deadline:
            return str(r.stdout)
        await asyncio.sleep(0.3)


async def tcp_state(ip: ipaddress.IPv4Address, port: int, netns: str | None = None) -> str:
    """'open', 'refused' or 'timeout' for a TCP connect (3 s), from here or from a netns."""
    probe = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(({str(ip)!r}, {port}), 3).close(); print('open')\n"
        "except ConnectionRefusedError: print('refused')\n"
        "except OSError: print('timeout')\n"
    )
    cmd = [sys.executable, "-c", probe]
    if netns is not None:
        cmd = ["nsenter", f"--net={netns}", *cmd]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    return out.decode().strip()


def leftovers_of(index: int, state: Path) -> list[str]:
    return [f"{i.kind}: {i.what}" for i in cleanup.instance_leftovers(index, state)]


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[NspawnBackend]:
    b = NspawnBackend(state_dir=tmp_path / "state")
    await b.start()
    try:
        await asyncio.wait_for(b.prepare_images(), 240)  # ~70 s the first time, then cached
        b.register_system_image(SYSTEM_IMAGE)
        yield b
    finally:
        index = b.lab.index
        await asyncio.wait_for(b.stop(), 60)
        assert leftovers_of(index, tmp_path / "state") == []


def spec(b: NspawnBackend, sid: int, host: int, keys: Keys, **kw: object) -> MachineSpec:
    return MachineSpec(
        server_id=sid,
        hostname=f"machine-{sid}",
        image_id=kw.pop("image_id", SYSTEM_IMAGE),  # type: ignore[arg-type]
        public_ipv4=b.public_range.network_address + host,
        user_data=kw.pop("user_data", keys.user_data()),  # type: ignore[arg-type]
        ssh_public_keys=[keys.client_public],
        memory_mib=kw.pop("memory_mib", 1024),  # type: ignore[arg-type]
        cpus=1,
        **kw,  # type: ignore[arg-type]
    )


async def test_machines_network_and_firewall(backend: NspawnBackend, tmp_path: Path) -> None:
    b, keys = backend, Keys()
    index = b.lab.index
    user_data = keys.user_data(
        {
            "write_files": [{"path": "/root/hello.txt", "content": "hello from cloud-init\n"}],
            "runcmd": [["sh", "-c", "echo ran > /root/ran.txt"]],
        }
    )
    await b.create(
        spec(b, 1, 10, keys, user_data=user_data, private_networks=[attachment(7, "10.0.1.2")])
    )
    await b.create(spec(b, 2, 11, keys))
    await b.create(spec(b, 3, 12, keys))
    ip1, ip2, ip3 = (b.public_range.network_address + h for h in (10, 11, 12))

    started = time.monotonic()
    for sid in (1, 2, 3):
        await b.power_on(sid)
        assert b.is_running(sid)
    c1 = await ssh(keys, ip1)
    boot_to_ssh = time.monotonic() - started
    c2, c3 = await ssh(keys, ip2), await ssh(keys, ip3)
    print(f"3 machines: boot to ssh {boot_to_ssh:.1f} s")
    for c in (c1, c2, c3):
        await wait_cloud_init(c)

    # cloud-init ran the user data and took the host name from the meta data
    r = await c1.run("cat /root/hello.txt /root/ran.txt; hostname", check=True)
    assert r.stdout == "hello from cloud-init\nran\nmachine-1\n"
    # Hetzner-like network inside: public /32 on eth0 via 172.31.1.1, the private one on
    # enp7s0, a /32 from DHCP
    r = await c1.run("ip -4 -o addr show; ip route show default", check=True)
    assert f"eth0    inet {ip1}/32" in str(r.stdout)
    assert "default via 172.31.1.1 dev eth0" in str(r.stdout)
    assert "inet 10.0.1.2/32" in await private_address(c1, "enp7s0")
    # the address echo tells every caller its address
    r = await c1.run(f"curl -s -m 5 {b.echo_url}", check=True)
    assert r.stdout == f"{ip1}\n"
    curl = await asyncio.create_subprocess_exec(
        "nsenter", f"--net={b.outside_netns}", "curl", "-s", "-m", "5", str(b.echo_url),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await curl.communicate()
    assert out.decode() == f"{b.public_range.network_address + 2}\n"
    # memory limit of the server type, where cgroups allow it
    limits = b.cgroup_limits(1)
    print(f"cgroup limits: {limits}")
    if "memory.limit_in_bytes" in limits:
        r = await c1.run("cat /sys/fs/cgroup/memory/memory.limit_in_bytes", check=True)
        assert int(str(r.stdout)) == 1024 * 1024 * 1024

    # private network: hot-plug machine 2 while it runs; machine 3 stays outside
    await b.attach_network(2, attachment(7, "10.0.1.3"))
    assert "inet 10.0.1.3/32" in await private_address(c2, "enp7s0")
    assert (await c1.run("ping -c1 -W2 10.0.1.3", check=False)).exit_status == 0
    assert (await c2.run("ping -c1 -W2 10.0.1.2", check=False)).exit_status == 0
    assert (await c3.run("ping -c1 -W2 10.0.1.2", check=False)).exit_status != 0
    assert (await c3.run("ping -c1 -W2 10.0.1.3", check=False)).exit_status != 0
    # public side: machines reach each other
    assert (await c3.run(f"ping -c1 -W2 {ip1}", check=False)).exit_status == 0

    # firewall on machine 1: ssh from this host only
    await c1.run("systemd-run --unit=web python3 -m http.server 8080", check=True)
    for _ in range(50):
        if await tcp_state(ip1, 8080) == "open":
            break
        await asyncio.sleep(0.1)
    assert await tcp_state(ip1, 8080) == "open"
    assert await tcp_state(ip1, 22, b.outside_netns) == "open"
    await b.set_firewall(
        1,
        FirewallPolicy(
            applied=True,
            rules=(
                FirewallRule(
                    "in", "tcp", (22, 22), (ipaddress.IPv4Network(f"{b.client_address}/32"),)
                ),
            ),
        ),
    )
    assert await tcp_state(ip1, 22) == "open"
    assert await tcp_state(ip1, 8080) == "timeout"
    assert await tcp_state(ip1, 22, b.outside_netns) == "timeout"
    # the already open connection keeps working; private traffic is not filtered
    assert (await c1.run("true", check=False)).exit_status == 0
    assert (await c2.run("ping -c1 -W2 10.0.1.2", check=False)).exit_status == 0
    # ... and the public side from another machine is
    assert (await c3.run(f"ping -c1 -W2 {ip1}", check=False)).exit_status != 0
    # detach: the private address is gone
    await b.detach_network(2, 7)
    assert (await c1.run("ping -c1 -W1 10.0.1.3", check=False)).exit_status != 0
    # lifting the firewall opens everything again
    await b.set_firewall(1, FirewallPolicy(applied=False))
    assert await tcp_state(ip1, 8080) == "open"
    for c in (c1, c2, c3):
        c.close()

    await b.stop()
    assert leftovers_of(index, tmp_path / "state") == []
    assert not any(n.startswith(f"sbg{index}-") for n in os.listdir("/run/netns"))
    assert f"sbg{index}h" not in os.listdir("/sys/class/net")
    with open("/proc/self/mountinfo") as f:  # noqa: ASYNC230 - a tiny /proc file
        assert str(tmp_path / "state") not in f.read()


async def test_lifecycle_and_snapshot(backend: NspawnBackend) -> None:
    b, keys = backend, Keys()
    exits: list[tuple[int, int]] = []
    b.set_exit_callback(lambda sid, code: exits.append((sid, code)))
    ip = b.public_range.network_address + 20
    await b.create(spec(b, 5, 20, keys))
    await b.power_on(5)
    c = await ssh(keys, ip)
    await wait_cloud_init(c)
    await c.run("echo kept > /root/data.txt", check=True)
    boot1 = (await c.run("cat /proc/sys/kernel/random/boot_id", check=True)).stdout
    c.close()

    # reboot: the guest reboots, nspawn exits 133 and comes back on the same disk
    await b.reboot(5)
    # wait for the new boot itself: an early ssh may still reach the old one going down
    give_up = time.monotonic() + 180
    while True:
        with contextlib.suppress(OSError, asyncssh.Error):
            c = await ssh(keys, ip)
            r = await c.run("cat /proc/sys/kernel/random/boot_id /root/data.txt", check=True)
            c.close()
            boot2, data = str(r.stdout).splitlines()
            if boot2 != str(boot1).strip():
                break
        assert time.monotonic() < give_up, "the machine did not come back from its reboot"
        await asyncio.sleep(1)
    assert data == "kept"
    assert b.is_running(5) and exits == []

    # shutdown: orderly, no exit callback (the model asked for it)
    started = time.monotonic()
    await b.shutdown(5, timeout=30)
    print(f"shutdown took {time.monotonic() - started:.1f} s")
    assert not b.is_running(5) and exits == []

    # power on again: same disk; kill: as if the host died, the callback fires
    await b.power_on(5)
    c = await ssh(keys, ip)
    assert (await c.run("cat /root/data.txt", check=True)).stdout == "kept\n"
    await b.kill(5)
    assert not b.is_running(5)
    assert [sid for sid, _code in exits] == [5]

    # poweroff inside the guest: stops on its own, the callback fires
    await b.power_on(5)
    c = await ssh(keys, ip)
    await c.run("systemctl poweroff", check=False)
    # wait for the exit callback itself; the machine is stopped by the time it fires
    give_up = time.monotonic() + 60
    while len(exits) < 2:
        assert time.monotonic() < give_up, "the guest's poweroff never reached the callback"
        await asyncio.sleep(0.1)
    assert not b.is_running(5)
    assert exits[-1] == (5, 0)

    # snapshot: a new server from it has the data, but is a new instance
    await b.snapshot(5, 900)
    await b.destroy(5)
    await b.create(spec(b, 6, 21, keys, image_id=900))
    await b.power_on(6)
    c = await ssh(keys, b.public_range.network_address + 21)
    await wait_cloud_init(c)
    r = await c.run("cat /root/data.txt; hostname; cloud-init query instance_id", check=True)
    assert str(r.stdout).splitlines() == ["kept", "machine-6", "i-6"]
    c.close()
    await b.power_off(6)
    assert not b.is_running(6)
    await b.destroy(6)
    await b.delete_image(900)


CRASHING_EMULATOR = """
import asyncio, ipaddress, sys
from pathlib import Path
from scherbelberg.emulator.machines.base import MachineSpec, PrivateAttachment
from scherbelberg.emulator.machines.nspawn import NspawnBackend

async def main():
    b = NspawnBackend(state_dir=Path(sys.argv[1]))
    await b.start()
    await b.prepare_images()
    b.register_system_image(1)
    net = ipaddress.IPv4Network("10.0.0.0/16")
    private = PrivateAttachment(7, ipaddress.IPv4Address("10.0.1.2"), net, net[1])
    await b.create(MachineSpec(1, "crash", 1, b.public_range.network_address + 30, None,
                               private_networks=[private]))
    await b.power_on(1)
    print(b.lab.index, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_cleanup_after_crash(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_EMULATOR, str(state), stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 240)
    index = int(line)
    try:
        await asyncio.sleep(2)  # let the machine boot a bit
        live = cleanup.instance_leftovers(index, state)
        assert {i.kind for i in live} >= {"process", "netns", "link", "state"}
        assert all(i.index != index for i in cleanup.find_leftovers(state)), "live: not leftover"
    finally:
        proc.kill()
        await proc.wait()
    found = cleanup.find_leftovers(state)
    assert {i.kind for i in found if i.index == index} >= {"process", "netns", "link", "state"}
    # the private network's namespace, its dnsmasq and dnsmasq's files are leftovers too
    assert f"sbg{index}-n7" in {i.what for i in found if i.kind == "netns"}, found
    assert any("dnsmasq" in i.what for i in found if i.kind == "process"), found
    assert any(i.kind == "run" for i in found if i.index == index), found
    # the instance's apt cache daemon is a leftover too (its state dir is on its command line)
    assert any("apt-cacher-ng" in i.what for i in found if i.kind == "process"), found
    cleanup.remove_leftovers(state)
    assert leftovers_of(index, state) == []
    assert cleanup.remove_leftovers(state) == []  # nothing left: still fine
