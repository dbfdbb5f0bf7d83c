"""close() when things go wrong on the way, and the shared action poller."""

from __future__ import annotations

import time

import pytest

from scherbelberg.hetzner import session

from .conftest import Project
from .local_nodes import LocalCluster


@pytest.mark.usefixtures("quick_polls")
async def test_close_sweeps_by_label_when_a_delete_fails(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's server refuses to be deleted (500, twice): close() loses track, and finds
    and deletes what is left by the cluster's label instead of giving up."""
    # tries at 0 and 0.2 s, then the budget is spent: close() gives up on that delete
    monkeypatch.setattr(session, "FIRST_RETRY", 0.2)
    monkeypatch.setattr(session, "RETRY_SECONDS", 0.5)
    cluster = await LocalCluster(n_workers=2, **project.kwargs())
    victim = project.servers("worker")[0]
    project.control.set_faults(
        {
            "http": [
                {"path": f"^/servers/{victim.id}$", "method": "DELETE", "status": 500, "count": 3}
            ]
        }
    )
    since = time.time()
    await cluster.close()
    asked = project.control.requests(project.token, since=since)  # before our own look
    assert project.leftovers() == []
    assert project.clusters_in_state() == []
    refused = [r["time"] for r in asked if r["method"] == "DELETE" and r["status"] == 500]
    assert refused, "the injected fault did not fire"
    sweeps = [
        r
        for r in asked
        if r["method"] == "GET"
        and r["path"].endswith("/servers")
        and "scherbelberg/cluster" in r["query"]
        and r["time"] > min(refused)
    ]
    assert sweeps, "close() did not look for the cluster's servers by label"


async def test_one_poller_serves_every_node(project: Project) -> None:
    """Six servers start at once: their create and start actions are polled together, one
    `GET /actions?id=…` a round, not a poll loop per node."""
    since = time.time()
    cluster = await LocalCluster(n_workers=6, **project.kwargs())
    took = time.time() - since
    await cluster.close()
    polls = [
        r
        for r in project.control.requests(project.token, since=since)
        if r["method"] == "GET" and r["path"].endswith("/actions") and r["time"] < since + took
    ]
    ids_per_poll = [r["query"].count("id=") for r in polls]
    assert polls
    assert max(ids_per_poll) >= 7, ids_per_poll  # scheduler + six workers in one request
    # rounds come after 1, 3, 7 s, then every 4 s: at most that many for the whole start
    assert len(polls) <= 3 + took / session.MAX_POLL, (len(polls), took)
