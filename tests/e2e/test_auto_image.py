"""`image: auto` with environment images (issue 11): the first cluster installs and leaves one
image behind, the next boots from it (also the workers `adapt()` adds), another environment
does not use it, a failed image build costs the cluster nothing, and `image prune` deletes
exactly what its rules select."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from distributed import Client

from scherbelberg import HetznerCluster
from scherbelberg.bootstrap import LOG_FILE, client_env_spec
from scherbelberg.cluster import env_images
from scherbelberg.hetzner.session import HetznerSession
from tests.cli.conftest import cli, cli_env
from tests.conftest import must
from tests.e2e.conftest import Target, name_of, on_every_server

INSTALL_WORDS = ("venv from", "Installed ", "apt-get", "+ dask==")


def defaults(target: Target, **more: Any) -> dict[str, Any]:
    """The target's arguments with environment images on, as a user's defaults have them."""
    return {**target.cluster_kwargs, "env_images": True, **more}


def bootstrap_logs(cluster: HetznerCluster, target: Target) -> dict[str, tuple[int, str]]:
    """Each node of the cluster: (the image it was made from, its bootstrap log)."""
    logs = on_every_server(target, cluster, f"cat {LOG_FILE}")
    servers = target.hcloud().servers.get_all(label_selector=f"scherbelberg/cluster={cluster.name}")
    image_of = {
        name_of(s, "server"): must(s.image.id, "image id") for s in servers if s.image is not None
    }
    return {name: (image_of[name], log) for name, log in logs.items()}


def stored_images(target: Target) -> list[env_images.EnvImage]:
    return asyncio.run(env_images.list_env_images(HetznerSession(target.token, target.endpoint)))


@pytest.mark.timeout(1500)
def test_second_cluster_boots_from_the_image_the_first_left(target: Target) -> None:
    target.keeps_env_images = True  # the image it makes is no leftover
    # 1. defaults, no image yet: the nodes install, an image is made for next time
    with HetznerCluster(n_workers=1, **defaults(target)) as first:
        said = [message for _, message in first._cluster_manager_logs]
        assert any("an environment image is being made for next time" in m for m in said), said
        with Client(first) as client:
            assert client.submit(sum, [1, 2, 3]).result() == 6
        for name, (_, log) in bootstrap_logs(first, target).items():
            assert "venv from" in log, (name, log)
    made = stored_images(target)
    env = client_env_spec()
    assert len(made) == 1, made
    image = made[0]
    assert image.matches(env) and image.status == "available"
    assert image.env_hash == env_images.env_hash(env, "x86", image.base_image)
    assert target.leftovers() == []  # the builder's server, key and firewall are gone

    # 2. the same environment again: every node boots from that image and installs nothing
    with HetznerCluster(n_workers=1, **defaults(target)) as second:
        said = [message for _, message in second._cluster_manager_logs]
        assert any(f"booting from environment image {image.id}" in m for m in said), said
        assert not any("being made" in m for m in said), said
        with Client(second) as client:
            assert client.submit(sum, [1, 2, 3]).result() == 6
            logs = bootstrap_logs(second, target)
            assert len(logs) == 2
            for name, (image_id, log) in logs.items():
                assert image_id == image.id, name
                assert "preinstalled: only checking the environment" in log, (name, log)
                for word in INSTALL_WORDS:
                    assert word not in log, (name, word, log)

            # 3. adapt: the workers it adds boot from the image too (read while they work:
            # once the backlog is gone, adapt() retires them again)
            second.adapt(minimum=1, maximum=3)
            futures = client.map(time.sleep, [1.5] * 400, pure=False)
            deadline = time.monotonic() + 300
            while len(client.scheduler_info()["workers"]) < 3:
                assert time.monotonic() < deadline, "adapt() added no workers"
                time.sleep(1)
            logs = bootstrap_logs(second, target)
            client.gather(futures)
            added = {n: v for n, v in logs.items() if n.endswith(("worker-1", "worker-2"))}
            assert len(added) >= 2, sorted(logs)
            for name, (image_id, log) in added.items():
                assert image_id == image.id, name
                assert "preinstalled: only checking the environment" in log, (name, log)
    assert [i.id for i in stored_images(target)] == [image.id]  # one image, still

    # 4. another environment: another hash, the old image is not used
    extra = defaults(target, extra_packages=["six"], env_images=False)
    with HetznerCluster(n_workers=1, **extra) as third:
        said = [message for _, message in third._cluster_manager_logs]
        assert not any("booting from environment image" in m for m in said), said
        for name, (image_id, log) in bootstrap_logs(third, target).items():
            assert image_id != image.id, name
            assert "venv from" in log and "+ six==" in log, (name, log)
    assert target.leftovers() == []


def test_a_failed_image_build_costs_the_cluster_nothing(target: Target) -> None:
    if target.control is None:
        pytest.skip("needs the local Hetzner's fault injection")
    target.control.update_faults(failing_actions={"create_image": 1.0})
    try:
        with HetznerCluster(n_workers=1, **defaults(target)) as cluster:
            with Client(cluster) as client:
                assert client.submit(sum, [1, 2, 3]).result() == 6
                assert len(client.scheduler_info()["workers"]) == 1
            cluster.sync(cluster.auto_image.finish, wait=True)
            builders = target.hcloud().servers.get_all(
                label_selector=f"scherbelberg/role={env_images.ROLE}"
            )
            assert builders == []
            # the cluster in hand: all there, still computing
            with Client(cluster) as client:
                assert client.submit(sum, [4, 5]).result() == 9
    finally:
        target.control.update_faults(failing_actions={})
    assert stored_images(target) == []
    assert target.leftovers() == []


def test_prune_deletes_exactly_what_its_rules_select(target: Target) -> None:
    """Three images of one environment and one of another (snapshots of a plain server,
    labelled as scherbelberg labels its images); prune keeps the newest of each environment,
    then with --unused-for the forgotten one goes too, and nothing else."""
    target.keeps_env_images = True  # the image it makes is no leftover
    client = target.hcloud()
    server = client.servers.create(
        name="prune-source",
        server_type=must(client.server_types.get_by_name("cpx22"), "server type cpx22"),
        image=must(
            client.images.get_by_name_and_architecture("debian-12", "x86"), "image debian-12"
        ),
        location=client.locations.get_by_name("fsn1"),
    ).server
    made: dict[str, int] = {}
    now = int(time.time())
    try:
        for key, env_hash, last_used in (
            ("a1", "aaaa", now),
            ("a2", "aaaa", now),
            ("a3", "aaaa", now),
            ("b1", "bbbb", now - 40 * 86400),
        ):
            response = client.servers.create_image(
                server,
                description=key,
                labels={
                    "scherbelberg/managed": "true",
                    env_images.ENV_IMAGE: env_hash,
                    env_images.LAST_USED: str(last_used),
                },
            )
            response.action.wait_until_finished()
            made[key] = must(response.image.id, "id of the new image")
            time.sleep(1.1)  # distinct creation times, as images made one after another
    finally:
        client.servers.delete(server).wait_until_finished()
    a1, a2, a3, b1 = made["a1"], made["a2"], made["a3"], made["b1"]
    env = cli_env(target)
    endpoint = ["--endpoint", target.endpoint]
    listing = json.loads(cli(target, "image", "ls", *endpoint, "-o", "json", env=env).stdout)
    assert sorted(r["id"] for r in listing) == sorted(made.values())
    assert all(r["monthly_cost"] > 0 and r["currency"] for r in listing), listing
    # no cluster, but images billing: `ls` says so
    overview = cli(target, "ls", env=env).stdout
    assert "environment images: 4," in overview and "more than the clusters cost" in overview

    dry = cli(target, "image", "prune", "--unused-for", "never", "--dry-run", *endpoint, env=env)
    assert f"image {a1} " in dry.stdout and f"image {a2} " in dry.stdout
    assert "would delete 2 image(s)" in dry.stdout, dry.stdout
    assert sorted(i.id for i in stored_images(target)) == sorted(made.values())

    pruned = cli(target, "image", "prune", "--unused-for", "never", "--yes", *endpoint, env=env)
    assert "deleted 2 image(s)" in pruned.stdout, pruned.stdout
    assert sorted(i.id for i in stored_images(target)) == sorted([a3, b1])

    out = cli(target, "image", "prune", "--yes", "-o", "json", *endpoint, env=env).stdout
    assert [(r["id"], r["reason"]) for r in json.loads(out)] == [(b1, "not used for 40.0 days")]
    assert [i.id for i in stored_images(target)] == [a3]
    assert "nothing to prune" in cli(target, "image", "prune", "--yes", *endpoint, env=env).stdout
