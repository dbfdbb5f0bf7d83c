"""uv's Pythons in the lab (`scherbelberg.emulator.interpreters`): the downloads list in uv's
format and the routes that serve it; then the archive the project built (by `--build-image`)
installed by a real uv from that list, its interpreter run: version, ssl, sqlite3, venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scherbelberg.bootstrap import env as env_module
from scherbelberg.emulator import interpreters
from scherbelberg.emulator.interpreters import Archive, InterpreterMirror

# The fields of an entry of uv's own list (crates/uv-python/download-metadata.json, read by
# `JsonPythonDownload` in crates/uv-python/src/downloads.rs)
UV_FIELDS = {"name", "arch", "os", "libc", "major", "minor", "patch", "prerelease", "url",
             "sha256", "variant", "build"}  # fmt: skip


def fake_build(directory: Path) -> Archive:
    """What `ensure_archive` leaves behind, with a tiny archive of the same layout."""
    target = interpreters.archive_dir(directory)
    (target / "python" / "bin").mkdir(parents=True)
    (target / "python" / "bin" / "python3.11").write_text("#!/bin/sh\n")
    filename = f"cpython-3.11.2-{interpreters.recipe_key()}-x86_64-unknown-linux-gnu.tar.gz"
    with tarfile.open(target / filename, "w:gz") as tar:
        tar.add(target / "python", arcname="python")
    archive = Archive(filename, "3.11.2", "x86_64", "ab" * 32)
    (target / "archive.json").write_text(json.dumps(archive.__dict__))
    return archive


def test_the_list_entry_has_uvs_fields_and_key() -> None:
    archive = Archive("cpython-3.11.2-x.tar.gz", "3.11.2", "x86_64", "ab" * 32)
    key, entry = archive.list_entry("http://198.18.0.253/python/")
    assert key == "cpython-3.11.2-linux-x86_64-gnu"
    assert set(entry) == UV_FIELDS
    assert entry["arch"] == {"family": "x86_64", "variant": None}
    assert (entry["major"], entry["minor"], entry["patch"]) == (3, 11, 2)
    assert (entry["os"], entry["libc"], entry["name"]) == ("linux", "gnu", "cpython")
    assert entry["url"] == "http://198.18.0.253/python/cpython-3.11.2-x.tar.gz"


def test_the_recipe_key_follows_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    key = interpreters.recipe_key()
    monkeypatch.setattr(interpreters, "CONFIGURE", (*interpreters.CONFIGURE, "--enable-shared"))
    assert interpreters.recipe_key() != key


def test_ci_setup_installs_the_build_dependencies() -> None:
    setup = (Path(__file__).parents[2] / "ci" / "setup").read_text()
    for package in interpreters.BUILD_DEPENDS:
        assert f" {package}" in setup, package


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Path]]:
    app = web.Application()
    InterpreterMirror(tmp_path).add_routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, tmp_path
    await client.close()


async def test_the_routes_serve_what_is_built(served: tuple[TestClient, Path]) -> None:
    client, directory = served
    empty = await client.get("/python/downloads.json")
    assert empty.status == 200 and await empty.json() == {}  # nothing built: uv finds nothing
    archive = fake_build(directory)
    listing = await (await client.get("/python/downloads.json")).json()
    [(key, entry)] = listing.items()
    assert key == "cpython-3.11.2-linux-x86_64-gnu"
    # the URL as the asker reached the server (machines and the host see other addresses)
    assert entry["url"] == f"http://{client.host}:{client.port}/python/{archive.filename}"
    body = await (await client.get(f"/python/{archive.filename}")).read()
    assert body == (interpreters.archive_dir(directory) / archive.filename).read_bytes()
    assert (await client.get("/python/archive.json")).status == 404
    assert (await client.get("/python/..%2Farchive.json")).status == 404


@pytest.mark.mirror  # uv itself comes from PyPI
def test_a_real_uv_installs_the_built_archive_and_it_runs(tmp_path: Path) -> None:
    archive = interpreters.built()
    if archive is None:
        pytest.skip("no interpreter archive: python -m scherbelberg.emulator --build-image")
    uv = tmp_path / "uv"
    fetched = subprocess.run(
        [sys.executable, "-c", env_module._UV_FROM_INDEX_PY, env_module.PYPI_SIMPLE, "", str(uv)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    # the list as the lab serves it, the archive as a file URL (no server needed here)
    base = interpreters.archive_dir().as_uri() + "/"
    downloads = tmp_path / "downloads.json"
    downloads.write_text(json.dumps(InterpreterMirror().downloads(base)))
    env = {
        **os.environ,
        "UV_PYTHON_DOWNLOADS_JSON_URL": str(downloads),
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "pythons"),
        "UV_PYTHON_PREFERENCE": "only-managed",
        "UV_CACHE_DIR": str(tmp_path / "cache"),
        "UV_PYTHON_INSTALL_BIN": "0",
    }
    for argv in ([str(uv), "python", "install", "3.11"],
                 [str(uv), "venv", "--python", "3.11", str(tmp_path / "venv")]):  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
    probe = (
        "import platform, ssl, sqlite3, ctypes, lzma, bz2, zlib, sys, sysconfig;"
        "print(platform.python_version(), sys.prefix != sys.base_prefix,"
        " sysconfig.get_config_var('prefix'))"
    )
    out = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-c", probe],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert out[0] == archive.version and out[1] == "True"
    # uv rewrote the build's /install prefix to where it put the interpreter
    assert out[2].startswith(str(tmp_path / "pythons"))
