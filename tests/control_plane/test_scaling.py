"""Scaling on the control plane: whole servers go, placement groups fill, re-attach scales."""

from __future__ import annotations

import pytest

from scherbelberg.hetzner.infra import SPREAD_GROUP_SIZE

from .conftest import Project
from .local_nodes import LocalCluster

# the poller is not under test here (test_close.py tests it): polls every 0.25-0.5 s
pytestmark = pytest.mark.usefixtures("quick_polls")


def dask_names(cluster: LocalCluster) -> set[str]:
    return {str(w["name"]) for w in cluster.scheduler_info["workers"].values()}


async def test_scale_down_with_several_processes_per_server_deletes_whole_servers(
    project: Project,
) -> None:
    """`worker_processes=2`: four servers are eight Dask workers; scale(1) keeps one server
    and both its processes (asking the scheduler for three *processes* to close used to
    retire two servers and leave a third one billing)."""
    cluster = await LocalCluster(n_workers=4, **project.kwargs(worker_processes=2))
    try:
        assert len(project.servers("worker")) == 4
        assert len(dask_names(cluster)) == 8
        await cluster.scale(1)
        servers = project.servers("worker")
        assert len(servers) == 1
        kept = servers[0].name
        await cluster.scheduler_comm.identity()  # the scheduler has caught up
        assert {n.rsplit("-", 1)[0] for n in dask_names(cluster)} == {kept}
        assert len(dask_names(cluster)) == 2
        assert list(cluster.worker_spec) == [kept]
    finally:
        await cluster.close()
    assert project.leftovers() == []


async def test_more_workers_than_a_spread_group_holds_get_a_second_group(
    project: Project,
) -> None:
    n = SPREAD_GROUP_SIZE + 1
    cluster = await LocalCluster(n_workers=n, **project.kwargs())
    try:
        groups = project.hcloud().placement_groups.get_all(label_selector="scherbelberg/managed")
        assert len(groups) == 2
        sizes = [len(g.servers or []) for g in groups]
        # scheduler and 11 workers: 12 servers, at most 10 in a group
        assert sum(sizes) == n + 1
        assert max(sizes) <= SPREAD_GROUP_SIZE
        assert len(dask_names(cluster)) == n
    finally:
        await cluster.close()
    assert project.leftovers() == []


async def test_a_reattached_cluster_scales_down_and_is_destroyed(project: Project) -> None:
    made = await LocalCluster(n_workers=3, **project.kwargs(shutdown_on_close=False))
    name = made.name
    await made.close()  # lets go: the cluster lives on
    assert len(project.servers("worker")) == 3
    assert project.clusters_in_state() == [name]

    again = await LocalCluster.from_existing(
        name, token=project.token, endpoint=project.endpoint, asynchronous=True
    )
    try:
        assert sorted(again.worker_spec) == sorted(s.name for s in project.servers("worker"))
        await again.scale(1)
        assert len(project.servers("worker")) == 1
        assert len(dask_names(again)) == 1
    finally:
        await again.destroy()
    assert project.leftovers() == []
    assert project.clusters_in_state() == []
