"""The lab's conda channel (built by `--build-image`, cached) and the conda method's node-side
installer, run here on the host: a client environment made from the channel is reproduced
package for package by the program the nodes run, without a solve."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scherbelberg.bootstrap import conda_env
from scherbelberg.bootstrap.env import _RATTLER_INSTALL_PY
from scherbelberg.emulator import conda_channel


@pytest.fixture(scope="module")
def channel() -> Path:
    """The cached channel (ci/setup builds it; built here in about a minute otherwise)."""
    return conda_channel.ensure_channel()


@pytest.fixture(scope="module")
def client_prefix(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("client") / "env"
    conda_channel.create_env(channel.as_uri(), prefix)
    return prefix


def package_set(prefix: Path) -> set[tuple[str, str, str]]:
    packages, _ = conda_env.read_packages(prefix)
    return {(p.name, p.version, p.build) for p in packages}


def test_the_channel_makes_a_working_conda_environment(client_prefix: Path) -> None:
    """python from the interpreter the project builds, Dask's packages from wheels."""
    names = {name for name, _, _ in package_set(client_prefix)}
    assert names == {"python"} | {
        conda_channel.conda_name(w.split("==")[0]) for w in conda_channel.WHEELS
    }
    result = subprocess.run(
        [str(client_prefix / "bin" / "python"), "-c",
         "import sys, distributed, yaml, msgpack; print(sys.prefix, distributed.__version__)"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(client_prefix), "2026.8.0"]
    assert (client_prefix / "bin" / "dask").exists()  # noarch entry points became scripts
    env = conda_env.read_env(client_prefix)
    assert env.subdir == "linux-64" and env.pip_extras == () and env.local == ()


def run_node_installer(
    lines: list[str], prefix: Path, tmp: Path
) -> subprocess.CompletedProcess[str]:
    listing = tmp / "explicit.txt"
    listing.write_text("@EXPLICIT\n" + "".join(f"{line}\n" for line in lines))
    return subprocess.run(
        [sys.executable, "-c", _RATTLER_INSTALL_PY, str(listing), str(prefix), str(tmp / "pkgs")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_node_installer_reproduces_the_explicit_list(
    client_prefix: Path, tmp_path: Path
) -> None:
    lines = [p.explicit for p in conda_env.read_env(client_prefix).packages]
    node = tmp_path / "node"
    result = run_node_installer(lines, node, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(lines)} conda packages installed in {node} (no solve)" in result.stdout
    assert package_set(node) == package_set(client_prefix)
    check = subprocess.run(
        [str(node / "bin" / "python"), "-c", "import distributed"], capture_output=True, timeout=120
    )
    assert check.returncode == 0, check.stderr


def test_a_package_with_another_md5_is_named(client_prefix: Path, tmp_path: Path) -> None:
    lines = [p.explicit for p in conda_env.read_env(client_prefix).packages]
    bad = lines[0].rsplit("#", 1)[0] + "#" + "0" * 32
    result = run_node_installer([bad, *lines[1:]], tmp_path / "node", tmp_path)
    assert result.returncode != 0
    assert "scherbelberg: error: not in the channel with the client's md5: " in result.stderr
    assert bad.split("#")[0].rsplit("/", 1)[1] in result.stderr
    assert not (tmp_path / "node" / "conda-meta").exists()


async def test_the_lab_serves_the_channel(channel: Path) -> None:
    """GET /conda/<subdir>/<file>: what a conda client and the nodes read."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    app = web.Application()
    conda_channel.ChannelMirror(channel.parent).add_routes(app)
    async with TestClient(TestServer(app)) as client:
        repodata = await (await client.get("/conda/linux-64/repodata.json")).json()
        assert any(r["name"] == "python" for r in repodata["packages.conda"].values())
        arm = await (await client.get("/conda/linux-aarch64/repodata.json")).json()
        assert not arm.get("packages") and not arm.get("packages.conda")
        assert (await client.get("/conda/linux-64/nothing.conda")).status == 404
        assert (await client.get("/conda/osx-64/repodata.json")).status == 404
