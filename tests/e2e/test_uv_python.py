"""Must show 2 (issue 10): on an image without the client's Python (debian-13 has 3.13 only) a
1+1 cluster comes up through a uv-managed CPython of the client's major.minor, and the client's
version checks pass. On the local Hetzner uv comes from the PyPI mirror (its wheel) and the
interpreter from the lab's own downloads list (scherbelberg/emulator/interpreters.py); on the
real Hetzner from PyPI and python-build-standalone."""

from __future__ import annotations

import platform
import sys

import pytest
from distributed import Client

from scherbelberg import HetznerCluster
from scherbelberg.bootstrap import LOG_FILE
from scherbelberg.cluster import versions
from tests.e2e.conftest import Target, on_every_server

pytestmark = pytest.mark.machines


def test_debian_13_cluster_runs_the_clients_python_from_uv(target: Target) -> None:
    v = f"{sys.version_info.major}.{sys.version_info.minor}"
    # debian-13's own Python is 3.13: a 3.13 client would not need uv there, debian-12 (3.11)
    # is the image without its Python then
    image = "debian-13" if v != "3.13" else "debian-12"
    with HetznerCluster(n_workers=1, image=image, **target.cluster_kwargs) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)
            assert client.submit(sum, [1, 2, 3]).result() == 6
            on_workers = client.run(platform.python_version)
            assert len(on_workers) == 1
            assert all(x.startswith(f"{v}.") for x in on_workers.values()), on_workers
            assert client.run_on_scheduler(platform.python_version).startswith(f"{v}.")

            def broken_modules() -> list[str]:  # by value: the node has no tests package
                import importlib

                broken = []
                names = "ssl hashlib sqlite3 ctypes lzma bz2 zlib readline curses uuid decimal"
                for name in names.split():
                    try:
                        importlib.import_module(name)
                    except ImportError as e:
                        broken.append(f"{name}: {e}")
                return broken

            # the system libraries the interpreter links are there on the node's image
            assert list(client.run(broken_modules).values()) == [[]]
            # the client's checks: distributed's own (raises on a required mismatch) and
            # scherbelberg's (raises on another major.minor or package version)
            reported = client.get_versions(check=True)
            versions.check("scheduler", reported["scheduler"])
            for address, info in reported["workers"].items():
                versions.check(address, info)
        servers = target.hcloud().servers.get_all(
            label_selector=f"scherbelberg/cluster={cluster.name}"
        )
        assert {s.image.name for s in servers if s.image} == {image}
        logs = on_every_server(target, cluster, f"cat {LOG_FILE}")
        assert len(logs) == 2
        for name, log in logs.items():
            assert f"no usable python{v}" in log, (name, log)
            assert "(sha256 checked)" in log, (name, log)  # uv from the index, its wheel
            assert f"venv from the uv-managed Python Python {v}." in log, (name, log)
            if target.local:  # the lab's own interpreter list, not GitHub's
                assert "uv's Python downloads: http://" in log, (name, log)
    assert target.leftovers() == []
