"""Where the end-to-end suite runs: the local Hetzner by default, the real Hetzner Cloud when
SCHERBELBERG_E2E_TOKEN is set (costs money: see docs/testing.md).

Each test gets its own project on the local Hetzner (or the real project, which must be empty
of scherbelberg clusters), its own state dir, and a check afterwards that nothing is left."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from hcloud import Client
from hcloud.images import BoundImage

from scherbelberg.cluster import env_images
from scherbelberg.emulator.control import EmulatorControl, LocalHetzner
from tests.conftest import must

REAL_TOKEN = os.environ.get("SCHERBELBERG_E2E_TOKEN")


class Named(Protocol):
    """What hcloud's resources (servers, server types, locations, images) have."""

    @property
    def name(self) -> str | None: ...


def name_of(resource: Named | None, what: str) -> str:
    """The name of `resource` (a server, its type, location or image), which must have one."""
    return must(must(resource, what).name, f"name of the {what}")


@dataclass
class Target:
    """A Hetzner to test against, and the HetznerCluster arguments that point at it."""

    token: str
    endpoint: str
    control: EmulatorControl | None  # None on the real Hetzner
    cluster_kwargs: dict[str, Any] = field(default_factory=dict)
    # tests of environment images set this: a finished environment image is then kept on
    # purpose (not a leftover) until the fixture deletes it after the test
    keeps_env_images: bool = False

    @property
    def local(self) -> bool:
        return self.control is not None

    def hcloud(self) -> Client:
        return Client(self.token, api_endpoint=self.endpoint, poll_interval=0.5)

    def leftovers(self) -> list[str]:
        """Every scherbelberg-labelled resource still in the project."""
        client = self.hcloud()
        selector = "scherbelberg/managed"
        found = [f"server {s.name}" for s in client.servers.get_all(label_selector=selector)]
        found += [f"network {n.name}" for n in client.networks.get_all(label_selector=selector)]
        found += [f"firewall {f.name}" for f in client.firewalls.get_all(label_selector=selector)]
        found += [f"ssh key {k.name}" for k in client.ssh_keys.get_all(label_selector=selector)]
        found += [
            f"placement group {g.name}"
            for g in client.placement_groups.get_all(label_selector=selector)
        ]
        # snapshots bill by the GB like the rest: a half-made environment image is a leftover,
        # and so is a finished one unless the test keeps one on purpose
        found += [
            f"image {i.id} ({i.description})"
            for i in client.images.get_all(type=["snapshot"], label_selector=selector)
            if not (self.keeps_env_images and self._finished_env_image(i))
        ]
        return found

    @staticmethod
    def _finished_env_image(image: BoundImage) -> bool:
        return image.status == "available" and env_images.ENV_IMAGE in (image.labels or {})


@pytest.fixture
def target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Target]:
    monkeypatch.setenv("SCHERBELBERG_STATE_DIR", str(tmp_path / "state"))
    for name in ("HETZNER", "HCLOUD_TOKEN", "HCLOUD_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    if REAL_TOKEN:
        endpoint = os.environ.get("SCHERBELBERG_E2E_ENDPOINT", "https://api.hetzner.cloud/v1")
        target = Target(
            REAL_TOKEN,
            endpoint,
            None,
            {"token": REAL_TOKEN, "endpoint": endpoint, "env_images": False},
        )
    else:
        hetzner: LocalHetzner = request.getfixturevalue("local_hetzner")
        control = hetzner.control
        info = control.info()
        token = control.new_project()
        target = Target(
            token,
            hetzner.endpoint,
            control,
            {
                "token": token,
                "endpoint": hetzner.endpoint,
                "pip_index_url": info["pip_index_url"],
                # uv's Pythons built for the lab, for nodes without the client's Python
                "python_downloads_json_url": info["python_downloads_json_url"],
                "client_address_url": info["echo_url"],
                # one image build per test would double the machines: the tests of
                # environment images (test_auto_image.py) turn it on
                "env_images": False,
            },
        )
    yield target
    left = target.leftovers()
    if left or target.keeps_env_images:
        # delete them (on the real Hetzner they cost money), then fail the test if any was
        # left behind by mistake
        sweep(target.hcloud())
    assert not left, f"the test left resources behind: {left}"


def on_every_server(target: Target, cluster: Any, command: str) -> dict[str, str]:
    """`command`'s output on each node (scheduler and workers) of `cluster` (by server name),
    over SSH as the cluster's own key and pinned host keys allow (e.g. `cat` of the bootstrap
    log). Other servers with the cluster's label (an environment image's builder) are not
    nodes: they have keys of their own."""
    from scherbelberg.cluster import ssh

    servers = [
        server
        for server in target.hcloud().servers.get_all(
            label_selector=f"scherbelberg/cluster={cluster.name}"
        )
        if must(server.labels, f"labels of server {server.name}").get("scherbelberg/role")
        in ("scheduler", "worker")
    ]

    async def run_all() -> dict[str, str]:
        outputs = {}
        for server in servers:
            assert server.name and server.public_net and server.public_net.ipv4
            conn = await ssh.connect(
                str(server.public_net.ipv4.ip),
                cluster.ssh_private_key,
                cluster.state.host_keys()[server.name],
                deadline=60,
            )
            async with conn:
                _, out, _ = await ssh.run(conn, command, timeout=30)
            outputs[server.name] = out
        return outputs

    return asyncio.run(run_all())


def sweep(client: Client) -> None:
    selector = "scherbelberg/managed"
    for server in client.servers.get_all(label_selector=selector):
        client.servers.delete(server).wait_until_finished(max_retries=300)
    for firewall in client.firewalls.get_all(label_selector=selector):
        client.firewalls.delete(firewall)
    for network in client.networks.get_all(label_selector=selector):
        client.networks.delete(network)
    for group in client.placement_groups.get_all(label_selector=selector):
        client.placement_groups.delete(group)
    for key in client.ssh_keys.get_all(label_selector=selector):
        client.ssh_keys.delete(key)
    for image in client.images.get_all(type=["snapshot"], label_selector=selector):
        client.images.delete(image)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real clusters take minutes (the first one also fills the package mirror)."""
    for item in items:
        if "tests/e2e/" in str(item.fspath) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(900))
