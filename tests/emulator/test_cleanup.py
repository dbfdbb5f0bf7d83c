"""Must show 8: deleting servers and stopping the local Hetzner leave nothing behind —
no machine, network namespace, mount or link — and after a crash the cleanup command finds
and removes what a killed emulator left."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hcloud import Client

from scherbelberg.emulator.control import LocalHetzner
from tests.emulator.conftest import cloud_network, create_server, ssh_firewall

# each test starts its own local Hetzner with real machines
pytestmark = pytest.mark.machines


def host_state() -> dict[str, set[str]]:
    """What a local Hetzner could leave on this host."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True)
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    processes = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "systemd-nspawn" in text and "nsenter" not in text.split()[0]:
            processes.add(text.strip())
    return {
        "netns": {line.split()[0] for line in netns.stdout.splitlines() if line.strip()},
        "links": {line.split(":")[1].strip().split("@")[0] for line in links.stdout.splitlines()},
        "mounts": {line.split()[1] for line in mounts},
        "processes": processes,
    }


def populate(hetzner: LocalHetzner) -> tuple[Client, list[int]]:
    client = Client(hetzner.token, api_endpoint=hetzner.endpoint, poll_interval=0.2)
    network = cloud_network(client, "n", "10.9.0.0/16", "10.9.0.0/24")
    firewall = ssh_firewall(client, "f")
    ids = []
    for name in ("left-a", "left-b"):
        response = create_server(client, name, networks=[network], firewalls=[firewall])
        assert response.server.id is not None
        ids.append(response.server.id)
    return client, ids


def test_delete_and_stop_leave_nothing(local_hetzner: LocalHetzner) -> None:
    before = host_state()
    hetzner = LocalHetzner(stderr=subprocess.DEVNULL).start()
    try:
        client, ids = populate(hetzner)
        running = host_state()
        assert len(running["processes"]) >= len(before["processes"]) + 2
        for server in client.servers.get_all():
            client.servers.delete(server).wait_until_finished()
        # each machine is gone by the time its delete action has finished
        after_delete = host_state()
        assert after_delete["processes"] == before["processes"]
        assert not any(f"s{i}" in name for i in ids for name in after_delete["netns"])
    finally:
        code = hetzner.stop()
    assert code == 0
    assert host_state() == before


def test_cleanup_after_a_crash(local_hetzner: LocalHetzner) -> None:
    before = host_state()
    hetzner = LocalHetzner(stderr=subprocess.DEVNULL).start()
    populate(hetzner)
    assert hetzner.process is not None
    hetzner.process.send_signal(signal.SIGKILL)  # no chance to clean up
    hetzner.process.wait()
    hetzner.process = None
    left = host_state()
    assert left != before  # a crash really leaves machines, namespaces and mounts

    listed = subprocess.run(
        [sys.executable, "-m", "scherbelberg.emulator", "--cleanup", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert "leftover" in listed.stdout.lower()
    assert host_state() == left  # a dry run changes nothing

    cleaned = subprocess.run(
        [sys.executable, "-m", "scherbelberg.emulator", "--cleanup"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cleaned.returncode == 0, cleaned.stderr
    assert host_state() == before
    # and the running session emulator was not touched
    assert local_hetzner.control.info()["backend"] == "nspawn"
