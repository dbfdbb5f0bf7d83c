"""Environment images on the control plane: what a start does when none exists yet."""

from __future__ import annotations

import asyncio

import pytest

from scherbelberg.cluster import env_images

from .conftest import Project
from .local_nodes import LocalCluster

# the poller is not under test here (test_close.py tests it): polls every 0.25-0.5 s
pytestmark = pytest.mark.usefixtures("quick_polls")


async def test_a_start_that_may_not_make_an_image_starts_no_builder(project: Project) -> None:
    """`create --no-wait` leaves at once: no builder is requested that no one would drive
    (it would bill until the cluster is destroyed); the nodes install, and the user is told."""
    cluster = LocalCluster(n_workers=1, **project.kwargs(env_images=True))
    cluster.auto_image.may_make = False
    await cluster
    try:
        assert project.servers(env_images.ROLE) == []
        assert cluster.auto_image.making is None
        said = (await cluster.get_logs(scheduler=False, workers=False))["Cluster"]
        assert "no environment image is made for next time" in said, said
        assert len(project.servers("worker")) == 1
    finally:
        await cluster.close()
    assert project.leftovers() == []


async def test_workers_added_after_re_attach_boot_from_an_environment_image(
    project: Project,
) -> None:
    """An image made since the cluster started (by another cluster of the same environment):
    the workers `scale` adds after re-attaching boot from it instead of installing."""
    made = await LocalCluster(n_workers=1, **project.kwargs(shutdown_on_close=False))
    name, env, base = made.name, made.settings.env, made.image_for("worker")
    await made.close()
    client = project.hcloud()
    source = project.servers("worker")[0]
    labels = {
        "scherbelberg/managed": "true",
        env_images.ENV_IMAGE: env_images.env_hash(env, base.architecture, base.name),
        env_images.BASE_IMAGE: base.name,
        env_images.PYTHON: env.python,
    }
    response = client.servers.create_image(source, description="env", labels=labels)
    response.action.wait_until_finished()
    image_id = response.image.id
    assert image_id is not None

    again = await LocalCluster.from_existing(
        name, token=project.token, endpoint=project.endpoint, asynchronous=True
    )
    try:
        assert again.auto_image.used[base.architecture].id == image_id
        await again.scale(2)
        await asyncio.wait_for(again.wait_for_workers(2), 60)
        images = {s.name: s.image.id for s in project.servers("worker") if s.image}
        assert images == {source.name: source.image.id, f"{name}-worker-1": image_id}, images
    finally:
        await again.destroy()
    client.images.delete(client.images.get_by_id(image_id))
    assert project.leftovers() == []
