"""The local Hetzner's debian-12 and debian-13 are as bare as Hetzner's: no venv, no pip, apt
timers on, the system Python of the release, and apt installs through the lab's cache.

Why: the product's bootstrap branches on what the image lacks (`python3 -m venv` fails on
Hetzner's debian-12, so it installs python3-venv with apt); an emulator image that ships venv
would never run that branch. Facts: /work/shared/reference/hetzner-reality.md "Node images",
docs/emulator.md "Machine images".
"""

from __future__ import annotations

import asyncio
import time

import pytest
from hcloud import Client
from hcloud.images import Image
from hcloud.server_types import ServerType
from hcloud.ssh_keys import SSHKey

from tests.conftest import public_ip
from tests.machines import Keys, ssh_run

# two boots and a cold apt install on a shared host; a first debian-13 build adds ~3 min
pytestmark = [pytest.mark.machines, pytest.mark.timeout(900)]


def _create(client: Client, keys: Keys, key: SSHKey, name: str, image: str) -> str:
    response = client.servers.create(
        name=name,
        server_type=ServerType(name="cx23"),
        image=Image(name=image),
        ssh_keys=[key],
        user_data=keys.cloud_config(),
    )
    for action in [response.action, *response.next_actions]:
        action.wait_until_finished(max_retries=600)
    return public_ip(response.server)


async def _status(ip: str, keys: Keys, command: str) -> int:
    """The exit status of `command` on the server (its output is not wanted)."""
    out = await ssh_run(ip, keys, f"{command} >/dev/null 2>&1; echo rc=$?")
    return int(out.strip().rpartition("rc=")[2])


def test_debian_images_are_bare_and_apt_installs_through_the_lab_cache(
    hcloud_client: Client,
) -> None:
    keys = Keys.generate()
    started = time.monotonic()
    key = hcloud_client.ssh_keys.create(name="bare", public_key=keys.client_public)
    ip12 = _create(hcloud_client, keys, key, "bare-12", "debian-12")
    ip13 = _create(hcloud_client, keys, key, "bare-13", "debian-13")

    async def check() -> None:
        await ssh_run(ip12, keys, "cloud-init status --wait", deadline=180)
        print(f"debian-12 create to cloud-init done: {time.monotonic() - started:.1f} s")
        # as on Hetzner: no venv (Debian strips ensurepip), no pip, curl is there
        assert await _status(ip12, keys, "python3 -m venv /tmp/v") != 0
        assert await _status(ip12, keys, "python3 -m pip --version") != 0
        assert await _status(ip12, keys, "curl --version") == 0
        timers = await ssh_run(
            ip12, keys, "systemctl is-enabled apt-daily.timer apt-daily-upgrade.timer"
        )
        assert timers.split() == ["enabled", "enabled"]
        upgrades = await ssh_run(ip12, keys, "dpkg-query -W -f '${Status}' unattended-upgrades")
        assert upgrades == "install ok installed"
        t = time.monotonic()
        install = await ssh_run(
            ip12,
            keys,
            "export DEBIAN_FRONTEND=noninteractive; apt-get -o DPkg::Lock::Timeout=120 update"
            " && apt-get -o DPkg::Lock::Timeout=120 install -y python3-venv",
            deadline=300,
        )
        print(f"debian-12 apt-get update + install python3-venv: {time.monotonic() - t:.1f} s")
        assert "python3.11-venv" in install
        # apt reached Debian through the lab's cache only (machines have no internet)
        fetched = [line for line in install.splitlines() if line.startswith(("Get:", "Hit:"))]
        assert fetched and all(":3142/debian" in line for line in fetched), install
        sites = await ssh_run(ip12, keys, "apt-get indextargets --format '$(SITE)' | sort -u")
        assert sites.split() and all(":3142/debian" in s for s in sites.split()), sites
        await ssh_run(ip12, keys, "python3 -m venv /tmp/v && /tmp/v/bin/python -c 'print(1)'")

        await ssh_run(ip13, keys, "cloud-init status --wait", deadline=180)
        version = await ssh_run(ip13, keys, "python3 -c 'import sys; print(sys.version_info[:2])'")
        assert version.strip() == "(3, 13)"
        codename = await ssh_run(ip13, keys, ". /etc/os-release; echo $VERSION_CODENAME")
        assert codename.strip() == "trixie"
        assert await _status(ip13, keys, "python3 -m venv /tmp/v") != 0
        # trixie's suites (main, -updates, -security) all come through the cache
        update = await ssh_run(ip13, keys, "apt-get -o DPkg::Lock::Timeout=120 update", 300)
        assert "trixie-security" in update and "Err" not in update, update

    asyncio.run(check())
