"""Must show 3: a server's #cloud-config really runs on its machine (write_files + runcmd)."""

from __future__ import annotations

import asyncio

import pytest
from hcloud import Client

from tests.conftest import public_ip
from tests.emulator.conftest import create_server
from tests.machines import Keys, ssh_run

pytestmark = pytest.mark.machines  # real servers, reached over ssh


def test_cloud_config_runs_and_ssh_key_is_authorized(hcloud_client: Client) -> None:
    keys = Keys.generate()
    key = hcloud_client.ssh_keys.create(name="k", public_key=keys.client_public)
    user_data = keys.cloud_config(
        write_files=[{"path": "/etc/scherbelberg/hello.txt", "content": "hello from cloud-init\n"}],
        runcmd=[["sh", "-c", "cat /etc/scherbelberg/hello.txt | tr a-z A-Z > /root/ran.txt"]],
    )
    response = create_server(hcloud_client, "cloud-init-probe", ssh_keys=[key], user_data=user_data)
    ip = public_ip(response.server)

    async def check() -> None:
        await ssh_run(ip, keys, "cloud-init status --wait", deadline=120)
        written = await ssh_run(ip, keys, "cat /etc/scherbelberg/hello.txt")
        ran = await ssh_run(ip, keys, "cat /root/ran.txt")
        hostname = await ssh_run(ip, keys, "hostname")
        assert written == "hello from cloud-init\n"
        assert ran == "HELLO FROM CLOUD-INIT\n"
        assert hostname.strip() == "cloud-init-probe"
        # the user_data reached the machine byte for byte (NoCloud seed, no side channel)
        seeded = await ssh_run(ip, keys, "cat /var/lib/cloud/instance/user-data.txt")
        assert seeded == user_data

    asyncio.run(check())
