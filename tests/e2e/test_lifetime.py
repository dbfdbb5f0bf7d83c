"""Issue 8: the process that made a cluster with a TTL deletes it at that TTL while it lives,
as `scherbelberg reap` and the node reaper do when it does not (tests/cli/test_reaping.py)."""

from __future__ import annotations

import time

from distributed.core import Status

from scherbelberg import HetznerCluster
from tests.conftest import must
from tests.e2e.conftest import Target


def test_the_client_process_deletes_its_cluster_at_its_ttl(target: Target) -> None:
    cluster = HetznerCluster(n_workers=0, ttl="60s", **target.cluster_kwargs)
    try:
        expires = cluster.lifetime.expires
        assert expires is not None
        servers = target.hcloud().servers.get_all()
        assert servers and all(
            must(s.labels, "server labels")["scherbelberg/expires"] == str(int(expires))
            for s in servers
        )
        deadline = expires + 60
        while target.leftovers() or cluster.status != Status.closed:
            assert time.time() < deadline, f"not deleted at its TTL: {target.leftovers()}"
            time.sleep(2)
        assert time.time() >= expires - 1  # and not before
    finally:
        cluster.close()
