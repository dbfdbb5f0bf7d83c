"""Environment images: build a snapshot holding the client's env, then a cluster from it whose
nodes only check the environment (no install), and nothing is left afterwards."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from distributed import Client

from scherbelberg import HetznerCluster
from scherbelberg.bootstrap import LOG_FILE, client_env_spec
from scherbelberg.cluster import env_images
from scherbelberg.errors import BootstrapError
from scherbelberg.hetzner.session import HetznerSession
from tests.cli.conftest import cli, cli_env
from tests.e2e.conftest import Target, on_every_server


class BuilderWatch(threading.Thread):
    """Reads the image builder's machine-id from its disk while it runs (local Hetzner only:
    the disk as a rescue system would see it), to compare with the clones'."""

    def __init__(self, target: Target) -> None:
        super().__init__(daemon=True)
        self.target, self.machine_id, self.done = target, "", threading.Event()

    def run(self) -> None:
        assert self.target.control is not None
        servers = Path(self.target.control.info()["state_dir"]) / "servers"
        client = self.target.hcloud()
        while not self.done.is_set() and not self.machine_id:
            for server in client.servers.get_all(
                label_selector=f"scherbelberg/role={env_images.ROLE}"
            ):
                try:
                    text = (servers / str(server.id) / "upper/etc/machine-id").read_text()
                except OSError:
                    continue
                self.machine_id = text.strip()
            self.done.wait(0.5)


def test_env_image_nodes_skip_the_install(target: Target) -> None:
    target.keeps_env_images = True  # the image it makes is no leftover
    kwargs = target.cluster_kwargs
    session = HetznerSession(target.token, target.endpoint)
    env = client_env_spec(index_url=kwargs.get("pip_index_url"))
    messages: list[str] = []
    watch = BuilderWatch(target)
    if target.local:
        watch.start()

    async def build() -> int:
        return await env_images.build_env_image(
            session,
            env=env,
            location="fsn1",
            server_type="cx23",
            base_image="debian-12",
            deadline=900,
            client_address_url=kwargs.get("client_address_url", "https://api.ipify.org"),
            progress=messages.append,
        )

    image_id = asyncio.run(build())
    watch.done.set()
    try:
        assert any("snapshot" in m and "ready" in m for m in messages), messages
        if target.local:
            assert watch.machine_id, "the builder's machine-id was never seen"
        # the builder's server, key and firewall are gone already
        assert target.leftovers() == []
        found = asyncio.run(env_images.find_env_image(session, env, "x86", "debian-12"))
        assert found is not None and found.id == image_id
        assert asyncio.run(env_images.find_env_image(session, env, "arm", "debian-12")) is None
        assert asyncio.run(env_images.find_env_image(session, env, "x86", "debian-13")) is None
        listed = asyncio.run(env_images.list_env_images(session))
        assert [i.id for i in listed] == [image_id]
        assert listed[0].env_hash == env_images.env_hash(env, "x86", "debian-12")
        assert (listed[0].python, listed[0].base_image) == (env.python, "debian-12")
        assert listed[0].matches(env)

        with HetznerCluster(
            n_workers=1, image=str(image_id), preinstalled=True, **kwargs
        ) as cluster:
            with Client(cluster) as client:
                assert client.submit(sum, [1, 2, 3]).result() == 6
            servers = target.hcloud().servers.get_all(
                label_selector=f"scherbelberg/cluster={cluster.name}"
            )
            assert len(servers) == 2
            assert {s.image.id for s in servers if s.image is not None} == {image_id}

            logs = on_every_server(target, cluster, f"cat {LOG_FILE}")
            # the builder's own SSH login key did not travel into the clones
            for name, keys in on_every_server(
                target, cluster, "cat /root/.ssh/authorized_keys"
            ).items():
                assert len(keys.strip().splitlines()) == 1, (name, keys)
            identities: dict[str, tuple[str, str]] = {}  # name: (machine-id, host keys)
            for name, ident in on_every_server(
                target, cluster, "cat /etc/machine-id /etc/ssh/ssh_host_*_key.pub"
            ).items():
                machine_id, *host_keys = ident.strip().splitlines()
                identities[name] = (machine_id, "\n".join(host_keys))

            for name, log in logs.items():
                assert "preinstalled: only checking the environment" in log, (name, log)
                assert "the environment matches the client" in log, (name, log)
                # no install step ran, and only this node's bootstrap is in the log
                for word in ("venv from", "uv pip install", "Installed ", "micromamba"):
                    assert word not in log, (name, word, log)
                assert log.count("stage environment") == 1, (name, log)
            # every clone is its own machine: its own machine-id and host keys (issue 10)
            ids = [machine_id for machine_id, _ in identities.values()]
            host_keys = [keys for _, keys in identities.values()]
            assert len(set(ids)) == len(ids) == 2 and all(len(i) == 32 for i in ids), ids
            assert len(set(host_keys)) == 2, host_keys
            if target.local:
                assert watch.machine_id not in ids, (watch.machine_id, ids)
    finally:
        asyncio.run(env_images.delete_env_image(session, image_id))
    assert asyncio.run(env_images.find_env_image(session, env, "x86", "debian-12")) is None


def test_a_failed_build_leaves_nothing(target: Target) -> None:
    kwargs = target.cluster_kwargs
    session = HetznerSession(target.token, target.endpoint)
    good = client_env_spec(index_url=kwargs.get("pip_index_url"))
    bad = replace(good, pins=(*good.pins[1:], ("dask", "1999.1.0")))

    async def build() -> int:
        return await env_images.build_env_image(
            session,
            env=bad,
            location="fsn1",
            server_type="cx23",
            base_image="debian-12",
            deadline=600,
            client_address_url=kwargs.get("client_address_url", "https://api.ipify.org"),
        )

    with pytest.raises(BootstrapError, match="install failed"):
        asyncio.run(build())
    assert target.leftovers() == []
    assert asyncio.run(env_images.list_env_images(session)) == []


def test_cli_build_ls_delete(target: Target) -> None:
    target.keeps_env_images = True  # the image it makes is no leftover
    env = cli_env(target)
    endpoint = ["--endpoint", target.endpoint]
    built = json.loads(
        cli(target, "image", "build", *endpoint, "-o", "json", env=env, timeout=900).stdout
    )
    image_id = int(built["id"])
    try:
        listed = json.loads(cli(target, "image", "ls", *endpoint, "-o", "json", env=env).stdout)
        assert [i["id"] for i in listed] == [image_id]
        assert listed[0]["env_hash"] == built["env_hash"]
        assert listed[0]["matches_this_client"] is True
        text = cli(target, "image", "ls", *endpoint, env=env).stdout
        assert str(image_id) in text
        assert target.leftovers() == []
        # a system image is not scherbelberg's to delete
        refused = cli(target, "image", "delete", "1", "--yes", *endpoint, env=env, ok=False)
        assert refused.returncode == 1 and refused.stderr.startswith("error: ")
    finally:
        cli(target, "image", "delete", str(image_id), "--yes", *endpoint, env=env)
    assert json.loads(cli(target, "image", "ls", *endpoint, "-o", "json", env=env).stdout) == []
