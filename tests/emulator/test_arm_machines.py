"""ARM machines: a `cax` server of the local Hetzner is an arm64 Debian (run by qemu-aarch64),
an x86 server stays x86_64, as `uname -m` on real Hetzner servers of those types says."""

from __future__ import annotations

import asyncio
import time

import pytest
from hcloud import Client
from hcloud.actions import ActionFailedException
from hcloud.images import Image
from hcloud.server_types import ServerType

from tests.conftest import public_ip
from tests.emulator.conftest import must
from tests.machines import Keys, ssh_run

pytestmark = pytest.mark.machines


def test_arm_server_is_aarch64_and_x86_server_is_x86_64(hcloud_client: Client) -> None:
    keys = Keys.generate()
    key = hcloud_client.ssh_keys.create(name="k", public_key=keys.client_public)
    started = time.monotonic()
    responses = {
        name: hcloud_client.servers.create(
            name=name,
            server_type=ServerType(name=server_type),
            image=Image(name="debian-12"),
            ssh_keys=[key],
            user_data=keys.cloud_config(),
        )
        for name, server_type in (("arm-probe", "cax11"), ("x86-probe", "cx23"))
    }
    ips = {}
    for name, response in responses.items():
        assert response.server.image is not None
        ips[name] = (public_ip(response.server), must(response.server.image).architecture)
        for action in [response.action, *response.next_actions]:
            action.wait_until_finished(max_retries=600)

    async def uname(ip: str) -> str:
        # an emulated boot reaches sshd in about a minute (docs/benchmarks.md "ARM")
        out = await ssh_run(ip, keys, "uname -m; dpkg --print-architecture", deadline=300)
        print(
            f"{ip}: {out.split()[0]} answered ssh {time.monotonic() - started:.1f} s after create"
        )
        return out

    arm_ip, arm_arch = ips["arm-probe"]
    x86_ip, x86_arch = ips["x86-probe"]
    assert (arm_arch, x86_arch) == ("arm", "x86")

    async def both() -> tuple[str, str]:
        return await asyncio.gather(uname(arm_ip), uname(x86_ip))

    arm, x86 = asyncio.run(both())
    assert arm.split() == ["aarch64", "arm64"]
    assert x86.split() == ["x86_64", "amd64"]


def test_debian_13_on_arm_is_refused_at_create(hcloud_client: Client) -> None:
    """This host's qemu-user cannot boot debian-13's systemd (docs/emulator.md): the create
    action fails at once and says so, instead of a server that never answers SSH."""
    response = hcloud_client.servers.create(
        name="arm-trixie", server_type=ServerType(name="cax11"), image=Image(name="debian-13")
    )
    with pytest.raises(ActionFailedException) as raised:
        response.action.wait_until_finished(max_retries=120)
    error = must(raised.value.action.error)
    assert "debian-13 does not boot on arm servers here" in error["message"], error
    assert "use debian-12 for cax servers" in error["message"]
    hcloud_client.servers.delete(response.server).wait_until_finished()
