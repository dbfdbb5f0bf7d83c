"""A conda channel for the lab, built here: conda packages made from PyPI wheels, plus a
`python` package made from the interpreter the project builds for uv (interpreters.py).

Why: the conda method reproduces a client's conda environment on the nodes package for package
(bootstrap/conda_env.py). conda-forge is out of reach here (only PyPI and the Debian mirror
are), so the local Hetzner serves a channel of its own at http://198.18.k.253/conda/ (the echo
address, like the PyPI mirror), and a test client's conda environment is made from it.

- `ensure_channel()` (run by `python -m scherbelberg.emulator --build-image`, after the
  interpreter archive) downloads the wheels of `WHEELS` with pip, turns each into a conda
  package with conda-package-handling (`.conda`; layout and metadata as conda-build writes
  them: `info/index.json`, `info/paths.json`, `info/files`, `info/link.json` for noarch: python
  with its console scripts as entry points), packs the interpreter archive's tree as
  `python-<version>-<build>.conda` (linux-64) and indexes the channel with py-rattler's
  `index_fs` (repodata.json per subdir). Cached under /var/cache/scherbelberg/conda/<recipe
  hash>; a changed recipe builds a new channel.
- `ChannelMirror` serves it: `GET /conda/<subdir>/<file>`.

How it differs from conda-forge (also in docs/emulator.md): a handful of packages, exactly what
Dask's distributed needs on Python 3.11, for linux-64 only (`linux-aarch64` is an empty subdir:
no interpreter is built for arm); pure-Python wheels become `noarch: python` packages with
build `py_0`, binary wheels linux-64 packages with build `py311_0`, their wheel's content as it
is (libraries the wheel vendors stay vendored, no split into lib packages); `depends` names only
python (the channel serves exact lists, nothing solves against it); names are the PyPI names
(conda-forge's `dask-core` is `dask` here, `msgpack-python` is `msgpack`); the python package is
one package (no openssl, libffi, ... packages: the interpreter links Debian's libraries
statically where it can and dynamically to glibc, libssl3 and the like of the node's image).
"""

from __future__ import annotations

import asyncio
import email.parser
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from scherbelberg.emulator.build_cache import build_once, file_sha256, recipe_hash
from scherbelberg.errors import EmulatorError, EmulatorInputError

from . import interpreters

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

DIR_ENV = "SCHERBELBERG_CONDA_CHANNEL_DIR"
DEFAULT_DIR = Path("/var/cache/scherbelberg/conda")
MIRROR_PATH = "/conda/"
SUBDIR = "linux-64"  # the host's; interpreters.py builds for it only
SUBDIRS = ("noarch", "linux-64", "linux-aarch64")

RECIPE_VERSION = 1
PYTHON_TAG = "311"
# Dask's distributed and what it needs on Python 3.11, at the versions the project tests with
WHEELS = (
    "click==8.5.1",
    "cloudpickle==3.1.3",
    "dask==2026.8.0",
    "distributed==2026.8.0",
    "fsspec==2026.9.0",
    "importlib-metadata==10.2.0",
    "jinja2==3.1.6",
    "lazy-importer==0.1.0",
    "locket==1.0.0",
    "markupsafe==3.0.4",
    "msgpack==1.2.4",
    "packaging==26.4",
    "partd==1.4.2",
    "psutil==7.2.2",
    "pyyaml==6.0.4",
    "sortedcontainers==2.4.0",
    "tblib==3.2.2",
    "toolz==1.2.0",
    "tornado==6.6.1",
    "urllib3==2.8.0",
    "zict==3.0.0",
    "zipp==4.1.2",
)
PLACEHOLDER = interpreters.PREFIX  # "/install": the prefix the interpreter was built for


def recipe_key() -> str:
    return recipe_hash(str(RECIPE_VERSION), PYTHON_TAG, *WHEELS, interpreters.recipe_key())


def channel_dir(directory: Path | None = None) -> Path:
    root = directory or Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)
    return root / recipe_key()


def built(directory: Path | None = None) -> Path | None:
    """The current recipe's channel directory, if it was built."""
    target = channel_dir(directory)
    return target if (target / "noarch" / "repodata.json").is_file() else None


def ensure_channel(say: Progress = logger.info, directory: Path | None = None) -> Path:
    """Build the channel unless the current recipe's is cached; needs the interpreter archive."""
    target = channel_dir(directory)

    def build(channel: Path) -> Path:
        archive = interpreters.built()
        if archive is None:
            raise EmulatorError("no interpreter archive: build it first (interpreters.py)")
        start = time.monotonic()
        say(f"building the lab's conda channel: python {archive.version} + {len(WHEELS)} wheels")
        for subdir in SUBDIRS:
            (channel / subdir).mkdir(parents=True)
        python_package(
            interpreters.archive_dir() / archive.filename, archive.version, channel / SUBDIR
        )
        wheels = channel.parent / "wheels"
        _download(wheels)
        for wheel in sorted(wheels.glob("*.whl")):
            wheel_package(wheel, channel)
        index(channel)
        say(f"conda channel built in {time.monotonic() - start:.0f} s: {target}")
        return target

    return build_once(target, lambda: built(directory), build)


def _download(dest: Path) -> None:
    """The recipe's wheels for CPython 3.11 on manylinux x86_64 (pip resolves nothing)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.11", "--implementation", "cp", "--abi", f"cp{PYTHON_TAG}",
         "--abi", "abi3", "--abi", "none", "--platform", "manylinux2014_x86_64",
         "--platform", "manylinux_2_17_x86_64", "--platform", "any", "-d", str(dest), *WHEELS],
        check=True,
    )  # fmt: skip


def index(channel: Path) -> None:
    """repodata.json for every subdir, by py-rattler's indexer (plain JSON: no .zst, no
    shards, what every conda client reads)."""
    from rattler.index import index_fs

    asyncio.run(index_fs(channel, write_zst=False, write_shards=False, force=True))


# --- packages ---------------------------------------------------------------------------------


def _pack(root: Path, index_json: dict[str, Any], out_dir: Path, **info: Any) -> Path:
    """`root` (the files as they land in the prefix, or `site-packages/...` for noarch: python)
    as `<name>-<version>-<build>.conda` in `out_dir`, with conda-build's info/ files.
    `info` maps extra info/ file names to JSON content; `prefix_files` (a set of relative paths
    holding PLACEHOLDER as text) go to paths.json as text placeholders."""
    from conda_package_handling import api  # type: ignore[import-untyped]

    prefix_files: set[str] = info.pop("prefix_files", set())
    files = sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_symlink() or p.is_file()
    )
    paths = []
    for name in files:
        path = root / name
        entry: dict[str, Any] = {"_path": name}
        if path.is_symlink():
            entry.update(path_type="softlink", size_in_bytes=len(os.readlink(path)))
            entry["sha256"] = hashlib.sha256(os.readlink(path).encode()).hexdigest()
        else:
            entry.update(path_type="hardlink", sha256=file_sha256(path))
            entry["size_in_bytes"] = path.stat().st_size
            if name in prefix_files:
                entry.update(prefix_placeholder=PLACEHOLDER, file_mode="text")
        paths.append(entry)
    meta = root / "info"
    meta.mkdir()
    (meta / "index.json").write_text(json.dumps(index_json, indent=2, sort_keys=True))
    (meta / "paths.json").write_text(json.dumps({"paths": paths, "paths_version": 1}, indent=2))
    (meta / "files").write_text("".join(f + "\n" for f in files))
    for filename, content in info.items():
        (meta / filename.replace("_", ".")).write_text(json.dumps(content, indent=2))
    if prefix_files:
        (meta / "has_prefix").write_text(
            "".join(f"{PLACEHOLDER} text {f}\n" for f in sorted(prefix_files))
        )
    stem = f"{index_json['name']}-{index_json['version']}-{index_json['build']}"
    all_files = [*files, *sorted(p.relative_to(root).as_posix() for p in meta.iterdir())]
    # zstd level 9, not 19 (conda-package-handling's default): a minute less per build
    api.create(str(root), all_files, f"{stem}.conda", str(out_dir), compression_level=9)
    return out_dir / f"{stem}.conda"


def _index_json(name: str, version: str, build: str, subdir: str, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "subdir": subdir,
        "depends": [],
        "license": "",
        "timestamp": 0,
        **more,
    }


def conda_name(name: str) -> str:
    """conda package names are lower case, with `-` for runs of `-_.`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_package(wheel: Path, channel: Path) -> Path:
    """One wheel as a conda package: `noarch: python` (its files below `site-packages/`, its
    console scripts as entry points) when pure, else a linux-64 package for Python 3.11."""
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        metadata = email.parser.Parser().parsestr(z.read(f"{dist_info}/METADATA").decode())
        wheel_meta = z.read(f"{dist_info}/WHEEL").decode()
        pure = "Root-Is-Purelib: true" in wheel_meta and wheel.name.endswith("-none-any.whl")
        site = "site-packages" if pure else f"lib/python3.{PYTHON_TAG[1:]}/site-packages"
        root = Path(tmp) / "pkg"
        z.extractall(root / site)
        if any(n.split("/")[0].endswith(".data") for n in names):
            raise EmulatorInputError(f"{wheel.name}: wheels with a .data directory are not handled")
        (root / site / dist_info / "INSTALLER").write_text("conda\n")
        name, version = conda_name(metadata["Name"]), metadata["Version"]
        entry_points = _console_scripts(root / site / dist_info / "entry_points.txt")
        if pure:
            index_json = _index_json(
                name, version, "py_0", "noarch", noarch="python", depends=["python >=3.11"]
            )
            link = {"noarch": {"type": "python", "entry_points": entry_points},
                    "package_metadata_version": 1}  # fmt: skip
            return _pack(root, index_json, channel / "noarch", link_json=link)
        if entry_points:
            raise EmulatorInputError(
                f"{wheel.name}: console scripts of binary wheels are not handled"
            )
        index_json = _index_json(
            name, version, f"py{PYTHON_TAG}_0", SUBDIR, arch="x86_64", platform="linux",
            depends=[f"python 3.{PYTHON_TAG[1:]}.*"],
        )  # fmt: skip
        return _pack(root, index_json, channel / SUBDIR)


def _console_scripts(path: Path) -> list[str]:
    """`name = module:function` lines of a wheel's [console_scripts]."""
    if not path.is_file():
        return []
    scripts, section = [], ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "console_scripts" and "=" in line:
            name, _, target = line.partition("=")
            scripts.append(f"{name.strip()} = {target.strip()}")
    return scripts


def python_package(archive: Path, version: str, out_dir: Path) -> Path:
    """The interpreter archive's `python/` tree as the `python` package, with `bin/python`
    (conda's name) added. Scripts naming the build prefix (shebangs, python3.X-config, .pc
    files) get it as a text placeholder, replaced by the target prefix at install."""
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="tar")
        root = Path(tmp) / "python"
        minor = ".".join(version.split(".")[:2])
        (root / "bin" / "python").symlink_to(f"python{minor}")
        prefix_files = set()
        for path in [*(root / "bin").iterdir(), *(root / "lib" / "pkgconfig").glob("*.pc")]:
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                if b"\0" not in data[:4096] and PLACEHOLDER.encode() in data:
                    prefix_files.add(path.relative_to(root).as_posix())
        index_json = _index_json(
            "python", version, f"h{interpreters.recipe_key()[:7]}_0_cpython", SUBDIR,
            arch="x86_64", platform="linux",
        )  # fmt: skip
        return _pack(root, index_json, out_dir, prefix_files=prefix_files)


# --- serving ----------------------------------------------------------------------------------


class ChannelMirror:
    """The lab's route for conda clients: `GET /conda/<subdir>/<file>` from the built channel
    (read at each request: a channel built while the emulator runs is served at once)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory

    def add_routes(self, app: web.Application) -> None:
        if built(self.directory) is None:
            logger.warning(
                "no conda channel yet (python -m scherbelberg.emulator --build-image builds it): "
                "the conda method's tests cannot run"
            )
        app.router.add_get(MIRROR_PATH + "{subdir}/{filename}", self.handle_file)

    async def handle_file(self, request: web.Request) -> web.StreamResponse:
        subdir, filename = request.match_info["subdir"], request.match_info["filename"]
        channel = built(self.directory)
        if channel is None or subdir not in SUBDIRS or filename.startswith("."):
            raise web.HTTPNotFound(text=f"no conda channel file {subdir}/{filename}\n")
        path = channel / subdir / filename
        if "/" in filename or not path.is_file():
            raise web.HTTPNotFound(text=f"no conda channel file {subdir}/{filename}\n")
        return web.FileResponse(path)


def create_env(channel_url: str, prefix: Path, cache_dir: Path | None = None) -> None:
    """A conda environment at `prefix` holding every package of the channel (linux-64 and
    noarch), linked by py-rattler: what a test client runs in. No solve: the channel is the
    environment."""
    from rattler import Channel, RepoData, install

    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for subdir in ("noarch", SUBDIR):
            path = Path(tmp) / f"{subdir}.json"
            with urllib.request.urlopen(f"{channel_url}/{subdir}/repodata.json", timeout=60) as r:
                path.write_bytes(r.read())
            records += RepoData.from_path(str(path)).into_repo_data(Channel(channel_url))
    asyncio.run(install(records, target_prefix=prefix, cache_dir=cache_dir, show_progress=False))
