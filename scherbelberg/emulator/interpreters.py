"""Managed CPython for uv in the lab: built here from Debian's CPython source, served with a
downloads list uv is pointed at.

Why: a node whose image lacks the client's Python gets one from `uv python install`, which
downloads python-build-standalone archives from GitHub. The lab reaches no GitHub (only PyPI
and the Debian mirror), so the project builds such an archive itself and the emulator serves it:

- `ensure_archive()` (run by `python -m scherbelberg.emulator --build-image`) fetches the
  source package `python3.11` from Debian bookworm with `apt-get source --download-only` (apt
  checks it against the mirror's signed Sources index), unpacks the upstream tarball
  (`.orig.tar.gz`, without Debian's patches: those make a system Python, e.g. ensurepip
  disabled outside a venv), builds it with `./configure --prefix=/install` and packs the
  installed tree as `python/...`, the layout of python-build-standalone's `install_only`
  archives (uv unpacks the one top directory, `bin/python3.11` inside). Several minutes; cached
  under /var/cache/scherbelberg/interpreters/<recipe hash>, so a changed recipe rebuilds.
- `InterpreterMirror` adds `GET /python/downloads.json` and `GET /python/<archive>` to the
  lab's echo service. The list has uv's format (`crates/uv-python/download-metadata.json`: a
  map of keys like `cpython-3.11.2-linux-x86_64-gnu` to name, arch {family, variant}, os,
  libc, major, minor, patch, prerelease, url, sha256, variant, build), read by uv from
  `UV_PYTHON_DOWNLOADS_JSON_URL` (uv >= 0.6.13 for a file; http URLs since 0.9.10).

Built for the host's architecture only (x86_64 here): nodes of arm types get no archive from
the lab (an arm64 build under qemu user emulation was not attempted; see docs/emulator.md).
Environment: `SCHERBELBERG_INTERPRETER_DIR` (default /var/cache/scherbelberg/interpreters).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from scherbelberg.emulator.build_cache import build_once, file_sha256, recipe_hash
from scherbelberg.emulator.machines.image import host_mirror
from scherbelberg.errors import EmulatorError

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

DIR_ENV = "SCHERBELBERG_INTERPRETER_DIR"
DEFAULT_DIR = Path("/var/cache/scherbelberg/interpreters")

# The recipe: everything that goes into the archive. Changing any of it builds a new one.
RECIPE_VERSION = 1
SUITE = "bookworm"
SOURCE_PACKAGE = "python3.11"
PREFIX = "/install"  # python-build-standalone's prefix: uv rewrites it in sysconfig data
# Modules whose libraries are not on the nodes' images (Tk and X11; NIS's libnsl) or that Debian
# keeps apart (dbm.gnu in python3-gdbm): left out whatever -dev packages the build host has,
# so the archive does not depend on them (CPython 3.11's configure: py_cv_module_<name>=n/a).
LEFT_OUT = ("_tkinter", "nis", "_gdbm", "_dbm")
CONFIGURE = (
    f"--prefix={PREFIX}",
    "--with-ensurepip=no",
    *(f"py_cv_module_{name}=n/a" for name in LEFT_OUT),
)
# Left out of the archive: the test suite (a third of the install, never needed on a node).
DROPPED = ("test", "idlelib/idle_test", "lib2to3/tests", "tkinter/test")
ARCH = platform.machine()  # the host's (x86_64 here; uv's family names are the same): native
BUILD_DEPENDS = (  # Debian packages the build needs; ci/setup installs them
    "build-essential",
    "dpkg-dev",
    "libssl-dev",
    "libffi-dev",
    "zlib1g-dev",
    "libbz2-dev",
    "liblzma-dev",
    "libsqlite3-dev",
    "libreadline-dev",
    "libncurses-dev",
    "uuid-dev",
)  # no libgdbm-dev: dbm.gnu stays out, as in Debian (its python3-gdbm is apart)

MIRROR_PATH = "/python/"
LIST_NAME = "downloads.json"


@dataclass(frozen=True)
class Archive:
    """One built interpreter archive, as the downloads list describes it."""

    filename: str
    version: str  # "3.11.2"
    arch: str  # uv's arch family: "x86_64"
    sha256: str

    def list_entry(self, base_url: str) -> tuple[str, dict[str, Any]]:
        """uv's key and entry for this archive, its URL below `base_url`."""
        major, minor, patch = (int(p) for p in self.version.split("."))
        entry = {
            "name": "cpython",
            "arch": {"family": self.arch, "variant": None},
            "os": "linux",
            "libc": "gnu",
            "major": major,
            "minor": minor,
            "patch": patch,
            "prerelease": "",
            "url": base_url + self.filename,
            "sha256": self.sha256,
            "variant": None,
            "build": recipe_key(),
        }
        return f"cpython-{self.version}-linux-{self.arch}-gnu", entry


def recipe_key() -> str:
    """A short hash of the recipe (the cache directory's name)."""
    return recipe_hash(str(RECIPE_VERSION), SUITE, SOURCE_PACKAGE, *CONFIGURE, *DROPPED, ARCH)


def archive_dir(directory: Path | None = None) -> Path:
    """Where the current recipe's archive lives (it may not exist yet)."""
    root = directory or Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)
    return root / recipe_key()


def built(directory: Path | None = None) -> Archive | None:
    """The current recipe's archive, if it was built."""
    try:
        data = json.loads((archive_dir(directory) / "archive.json").read_text())
        return Archive(**data)
    except (OSError, ValueError, TypeError):
        return None


def ensure_archive(say: Progress = logger.info, directory: Path | None = None) -> Archive:
    """Build the interpreter archive unless the current recipe's is cached (one builder at a
    time: a lock file next to it)."""
    target = archive_dir(directory)

    def build(out: Path) -> Archive:
        say(f"building CPython from Debian's {SOURCE_PACKAGE} source for uv (several minutes)")
        start = time.monotonic()
        archive = _build(out.parent, say)  # leaves the archive in `out`
        say(f"interpreter archive {archive.filename} built in {time.monotonic() - start:.0f} s")
        for stale in target.parent.iterdir():  # earlier recipes' archives
            if stale.is_dir() and stale.name != target.name and not stale.name.startswith("."):
                shutil.rmtree(stale, ignore_errors=True)
        return archive

    return build_once(target, lambda: built(directory), build)


def _run(argv: list[str], log: Path, cwd: Path | None = None) -> None:
    """Run a build step, its output to `log`; a failure names the step and the log's tail."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise EmulatorError(f"{argv[0]} failed ({result.returncode}):\n{tail}")


def _fetch_source(work: Path, log: Path) -> Path:
    """Debian's upstream tarball of SOURCE_PACKAGE, through a private apt configuration (the
    host's own sources stay untouched), verified by apt against the signed Sources index."""
    apt = work / "apt"
    (apt / "lists" / "partial").mkdir(parents=True)
    (apt / "cache" / "archives" / "partial").mkdir(parents=True)
    (apt / "sources.list").write_text(f"deb-src {host_mirror()} {SUITE} main\n")
    options = [
        f"-oDir::Etc::SourceList={apt / 'sources.list'}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt / 'cache'}",
        "-oAPT::Sandbox::User=root",
        "-oAcquire::Retries=3",
    ]
    _run(["apt-get", "-q", *options, "update"], log)
    source = work / "source"
    source.mkdir()
    _run(["apt-get", "-q", *options, "source", "--download-only", SOURCE_PACKAGE], log, source)
    origs = sorted(source.glob(f"{SOURCE_PACKAGE}_*.orig.tar.*"))
    if not origs:
        raise EmulatorError(f"apt-get source {SOURCE_PACKAGE} brought no .orig tarball")
    return origs[0]


def _build(work: Path, say: Progress) -> Archive:
    log = work / "build.log"
    orig = _fetch_source(work, log)
    say(f"source: {orig.name}; configure {' '.join(CONFIGURE)}, make, make install")
    tree = work / "cpython"
    tree.mkdir()
    _run(["tar", "-xf", str(orig), "-C", str(tree), "--strip-components=1"], log)
    _run(["./configure", *CONFIGURE], log, tree)
    _run(["make", f"-j{os.cpu_count() or 1}"], log, tree)
    stage = work / "stage"
    _run(["make", "install", f"DESTDIR={stage}"], log, tree)
    python = stage / PREFIX.lstrip("/")
    version = _version(python)
    minor = ".".join(version.split(".")[:2])
    for name in DROPPED:
        shutil.rmtree(python / "lib" / f"python{minor}" / name, ignore_errors=True)
    _strip(python)
    out = work / "out"
    out.mkdir()
    filename = f"cpython-{version}-{recipe_key()}-{ARCH}-unknown-linux-gnu-install_only.tar.gz"
    with tarfile.open(out / filename, "w:gz", compresslevel=6) as tar:
        tar.add(python, arcname="python")
    archive = Archive(filename, version, ARCH, file_sha256(out / filename))
    (out / "archive.json").write_text(json.dumps(asdict(archive), indent=2) + "\n")
    shutil.copy(log, out / "build.log")
    return archive


def _version(python: Path) -> str:
    """The built interpreter's own version ("3.11.2"), asked from it (not from the file name)."""
    found = sorted((python / "bin").glob("python3.*[0-9]"))
    if not found:
        raise EmulatorError(f"make install left no bin/python3.X in {python}")
    out = subprocess.run(
        [str(found[0]), "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
        env={"PYTHONHOME": str(python), "PATH": os.environ.get("PATH", "")},
    )  # fmt: skip
    return out.stdout.strip()


def _strip(python: Path) -> None:
    """Debug symbols out of the interpreter and its extension modules (as the `_stripped`
    archives uv picks): the archive shrinks by about half."""
    binaries = (python / "bin").glob("python3.*")
    targets = [p for p in binaries if re.fullmatch(r"python3\.\d+", p.name) and not p.is_symlink()]
    targets += [p for p in (python / "lib").rglob("*.so") if not p.is_symlink()]
    targets += list((python / "lib").glob("python3.*/config-*/libpython3.*.a"))
    if targets and shutil.which("strip"):
        subprocess.run(["strip", "--strip-debug", *map(str, targets)], check=True)


class InterpreterMirror:
    """The lab's routes for uv: the downloads list and the archives it names.

    The list is read from the cache at each request, so an archive built while the emulator
    runs is served at once; with none built the list is empty and uv says it has no download
    for the version asked."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory

    def add_routes(self, app: web.Application) -> None:
        """Register /python/downloads.json and /python/<archive> (before any catch-all)."""
        if built(self.directory) is None:
            logger.warning(
                "no interpreter archive for uv yet (python -m scherbelberg.emulator "
                "--build-image builds it): nodes without the client's Python will fail"
            )
        app.router.add_get(MIRROR_PATH + LIST_NAME, self.handle_list)
        app.router.add_get(MIRROR_PATH + "{filename}", self.handle_archive)

    def downloads(self, base_url: str) -> dict[str, Any]:
        """uv's downloads list for what is built, archive URLs below `base_url`."""
        archive = built(self.directory)
        return dict([archive.list_entry(base_url)]) if archive else {}

    async def handle_list(self, request: web.Request) -> web.Response:
        # the URL as the asker reached us: the host and the machines see the lab differently
        base = f"{request.scheme}://{request.host}{MIRROR_PATH}"
        return web.json_response(self.downloads(base))

    async def handle_archive(self, request: web.Request) -> web.StreamResponse:
        filename = request.match_info["filename"]
        archive = built(self.directory)
        if archive is None or archive.filename != filename:
            raise web.HTTPNotFound(text=f"no interpreter archive {filename}\n")
        return web.FileResponse(archive_dir(self.directory) / filename)
