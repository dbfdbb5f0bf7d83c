"""Environment images on the control plane: what a start does when none exists yet."""

from __future__ import annotations

from scherbelberg.cluster import env_images

from .conftest import Project
from .local_nodes import LocalCluster


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
