"""Must show 1 (issue 10): on the bare debian-12 image a 1+1 cluster comes up, and the nodes'
bootstrap installed python3-venv with apt, the branch real Hetzner nodes take (the image has no
venv; tests/emulator/test_bare_images.py shows `python3 -m venv` fails on a fresh server)."""

from __future__ import annotations

import sys

from distributed import Client

from scherbelberg import HetznerCluster
from scherbelberg.bootstrap import LOG_FILE
from tests.e2e.conftest import Target, on_every_server


def test_bare_debian_12_cluster_installs_venv_with_apt(target: Target) -> None:
    v = f"{sys.version_info.major}.{sys.version_info.minor}"
    with HetznerCluster(n_workers=1, image="debian-12", **target.cluster_kwargs) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)
            assert client.submit(sum, [1, 2, 3]).result() == 6
        logs = on_every_server(target, cluster, f"cat {LOG_FILE}")
        assert len(logs) == 2
        for name, log in logs.items():
            if v != "3.11":  # debian-12 has python3.11 only: the uv-managed branch instead
                assert "uv-managed Python" in log, (name, log)
                continue
            assert f"python{v} -m venv failed" in log, (name, log)
            # apt's own lines: the package really came through the lab's apt cache
            assert f"Setting up python{v}-venv" in log, (name, log)
            if target.local:
                assert ":3142/debian" in log, (name, log)
            assert f"python{v}-venv installed with apt" in log, (name, log)
    assert target.leftovers() == []
