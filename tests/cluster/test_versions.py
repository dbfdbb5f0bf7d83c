"""Version checks name every package that differs between client and node."""

from __future__ import annotations

import pytest

from scherbelberg.cluster.versions import VersionMismatch, check, client_versions, mismatches


def node_like_client(**changes: str) -> dict[str, object]:
    packages: dict[str, object] = {k: v for k, v in client_versions().items() if v}
    packages.update(changes)
    return {"host": {"python": packages["python"]}, "packages": packages}


def test_same_versions_pass() -> None:
    assert mismatches(client_versions(), node_like_client()) == []
    check("worker w", node_like_client())


def test_patch_release_of_python_may_differ() -> None:
    major_minor = ".".join(str(client_versions()["python"]).split(".")[:2])
    assert mismatches(client_versions(), node_like_client(python=f"{major_minor}.0")) == []


def test_mismatch_names_the_packages() -> None:
    remote = node_like_client(dask="1999.1.0", python="3.8.10")
    with pytest.raises(VersionMismatch) as raised:
        check("scheduler s", remote)
    message = str(raised.value)
    assert "scheduler s" in message
    assert "dask client=" in message and "node=1999.1.0" in message
    assert "python client=" in message and "node=3.8" in message
    assert "distributed" not in message
