"""The client's conda environment, read from conda-meta as conda and py-rattler write it, and
mapped to the nodes' platform (pure: prefixes made here, repodata as data)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from scherbelberg.bootstrap import conda_env
from scherbelberg.bootstrap.conda_env import CondaPackage, for_nodes, read_env
from scherbelberg.bootstrap.env import client_env_spec
from scherbelberg.errors import ConfigError

CHANNEL = "https://conda.anaconda.org/conda-forge"
SITE = "lib/python3.11/site-packages"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def conda_package(
    prefix: Path, name: str, version: str, build: str, subdir: str, **more: Any
) -> None:
    """A conda-meta record as conda writes it (the fields conda_env reads, and `files`)."""
    fn = f"{name}-{version}-{build}.conda"
    record = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "subdir": subdir,
        "channel": f"{CHANNEL}/{subdir}",
        "url": f"{CHANNEL}/{subdir}/{fn}",
        "fn": fn,
        "md5": md5(name[0]),
        "files": [],
        **more,
    }
    (prefix / "conda-meta").mkdir(parents=True, exist_ok=True)
    (prefix / "conda-meta" / f"{name}-{version}-{build}.json").write_text(json.dumps(record))


def dist_info(
    prefix: Path, name: str, version: str, direct_url: dict[str, Any] | None = None
) -> str:
    where = prefix / SITE / f"{name}-{version}.dist-info"
    where.mkdir(parents=True)
    (where / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if direct_url is not None:
        (where / "direct_url.json").write_text(json.dumps(direct_url))
    return f"{SITE}/{where.name}"


def test_the_explicit_list_and_the_pip_extras(tmp_path: Path) -> None:
    """conda-owned distributions stay conda's; pip's are extras; local installs are named."""
    owned = dist_info(tmp_path, "dask", "2025.1.0")
    dist_info(tmp_path, "xarray", "2025.1.1")
    dist_info(tmp_path, "mylib", "0.1", {"url": "file:///home/me/mylib", "dir_info": {}})
    conda_package(tmp_path, "python", "3.11.9", "h1234567_0_cpython", "linux-64")
    conda_package(
        tmp_path, "dask-core", "2025.1.0", "pyhd8ed1ab_0", "noarch",
        files=[f"{owned}/METADATA", f"{owned}/licenses/LICENSE.txt", f"{SITE}/dask/__init__.py"],
    )  # fmt: skip
    env = read_env(tmp_path)
    assert env.explicit() == (
        "@EXPLICIT\n"
        f"{CHANNEL}/noarch/dask-core-2025.1.0-pyhd8ed1ab_0.conda#{md5('d')}\n"
        f"{CHANNEL}/linux-64/python-3.11.9-h1234567_0_cpython.conda#{md5('p')}\n"
    )
    assert env.subdir == "linux-64"
    assert env.pip_extras == ("xarray==2025.1.1",)
    assert env.local == ("mylib",)


def test_a_record_without_url_is_refused(tmp_path: Path) -> None:
    conda_package(tmp_path, "python", "3.11.9", "h1234567_0", "linux-64", url="")
    with pytest.raises(ConfigError, match="has no url or md5"):
        read_env(tmp_path)


def test_explicit_lines_name_their_package() -> None:
    line = f"{CHANNEL}/linux-64/ca-certificates-2025.1.31-hbcca054_0.conda#{md5('c')}"
    package = CondaPackage.from_explicit(line)
    assert (package.name, package.version, package.build, package.subdir) == (
        "ca-certificates", "2025.1.31", "hbcca054_0", "linux-64"
    )  # fmt: skip
    assert package.explicit == line and package.channel == CHANNEL
    with pytest.raises(ValueError, match="not an explicit conda package line"):
        CondaPackage.from_explicit("python-3.11.conda")


def line(name: str, version: str, build: str, subdir: str) -> str:
    return f"{CHANNEL}/{subdir}/{name}-{version}-{build}.conda#{md5(name[0])}"


MAC = (
    line("dask-core", "2025.1.0", "pyhd8ed1ab_0", "noarch"),
    line("python", "3.11.9", "h9f0c242_0_cpython", "osx-arm64"),
    line("msgpack-python", "1.1.0", "py311h2c37856_0", "osx-arm64"),
    line("libcxx", "19.1.7", "ha82da77_0", "osx-arm64"),
    line("llvm-openmp", "19.1.7", "hdb05f8b_0", "osx-arm64"),
)
LINUX_REPODATA = {
    "packages.conda": {
        "python-3.11.9-h9f0c242_0_cpython.conda": {
            "name": "python", "version": "3.11.9", "build": "h9f0c242_0_cpython", "md5": "1" * 32
        },
        # same version, same build but for the variant hash: what conda-forge builds per platform
        "msgpack-python-1.1.0-py311hd18a35c_0.conda": {
            "name": "msgpack-python", "version": "1.1.0", "build": "py311hd18a35c_0",
            "md5": "2" * 32,
        },
        "msgpack-python-1.1.0-py312hd18a35c_0.conda": {
            "name": "msgpack-python", "version": "1.1.0", "build": "py312hd18a35c_0",
            "md5": "3" * 32,
        },
        "llvm-openmp-19.1.6-h024ca30_0.conda": {
            "name": "llvm-openmp", "version": "19.1.6", "build": "h024ca30_0", "md5": "4" * 32
        },
    }
}  # fmt: skip


def test_another_platform_maps_by_name_version_and_build() -> None:
    """A Mac's list for linux-64 nodes: noarch stays, twins are found, the rest is named."""
    asked: list[tuple[str, str]] = []

    def repodata(channel: str, subdir: str) -> dict[str, Any]:
        asked.append((channel, subdir))
        return LINUX_REPODATA

    ok = [p for p in MAC if "libcxx" not in p and "llvm" not in p]
    [(subdir, lines)] = for_nodes([("osx-arm64", tuple(ok))], ["x86"], repodata)
    assert subdir == "linux-64"
    assert lines == (
        MAC[0],
        f"{CHANNEL}/linux-64/python-3.11.9-h9f0c242_0_cpython.conda#{'1' * 32}",
        f"{CHANNEL}/linux-64/msgpack-python-1.1.0-py311hd18a35c_0.conda#{'2' * 32}",
    )
    assert asked == [(CHANNEL, "linux-64")]  # once per channel and subdir

    with pytest.raises(ConfigError) as error:
        for_nodes(
            [("osx-arm64", MAC)],
            ["x86", "arm"],
            lambda c, s: LINUX_REPODATA if s == "linux-64" else {},
        )
    message = str(error.value)
    assert message.count("cannot be reproduced") == 1
    assert "linux-64 (x86 servers): libcxx 19.1.7 (ha82da77_0, osx-arm64), llvm-openmp 19.1.7" in (
        message
    )
    assert (
        "linux-aarch64 (arm servers): python 3.11.9 (h9f0c242_0_cpython, osx-arm64), msgpack"
        in (message)
    )
    assert "dask-core" not in message


def test_the_same_platform_needs_no_repodata() -> None:
    linux = tuple(p.replace("osx-arm64", "linux-64") for p in MAC)

    def repodata(channel: str, subdir: str) -> dict[str, Any]:
        raise AssertionError("no repodata needed")

    assert for_nodes([("linux-64", linux)], ["x86"], repodata) == (("linux-64", linux),)


def test_client_env_spec_of_a_conda_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the conda method, the spec carries the list and the extras before the user's."""
    conda_package(tmp_path, "python", "3.11.9", "h1234567_0_cpython", "linux-64")
    dist_info(tmp_path, "xarray", "2025.1.1")
    monkeypatch.setattr(conda_env.sys, "prefix", str(tmp_path))
    spec = client_env_spec("conda", ["zarr>=2.18"])
    assert spec.conda_packages == (
        ("linux-64", (f"{CHANNEL}/linux-64/python-3.11.9-h1234567_0_cpython.conda#{md5('p')}",)),
    )
    assert spec.extra_packages == ("xarray==2025.1.1", "zarr>=2.18")
    assert client_env_spec("pip").conda_packages == ()


def test_auto_is_conda_for_a_conda_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default `env.method: auto`: conda in a conda environment, pip elsewhere."""
    from scherbelberg.cluster.settings import resolve

    assert resolve().env.method == "pip"  # this test runs in a venv
    conda_package(tmp_path, "python", "3.11.9", "h1234567_0_cpython", "linux-64")
    monkeypatch.setattr(conda_env.sys, "prefix", str(tmp_path))
    settings = resolve()
    assert settings.env.method == "conda" and settings.as_dict()["env_method"] == "conda"
    assert settings.env.conda_packages[0][0] == "linux-64"
    assert resolve(env_method="pip").env.conda_packages == ()
