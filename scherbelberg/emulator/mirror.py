"""A PyPI pull-through mirror for the local Hetzner's machines (PEP 503 simple API).

Why: the machines have no internet, yet `pip` and `uv` inside them must install real packages
(Dask and friends). The emulator process runs on the host, which reaches PyPI, and it already
serves the lab's address-echo service; this mirror adds its routes to that same app, so the
machines (through their gateway) and the host both reach it at http://198.18.k.253/simple/.

- `GET /simple/<project>/` fetches PyPI's JSON index (PEP 691), keeps it on disk for
  `fresh_seconds` (stale copies are served when PyPI fails), and renders a PEP 503 HTML page whose
  links point back here: `/files/<sha256>/<filename>#sha256=<sha256>`. An unknown project is a
  404 at once (PyPI's 404 is passed on).
- `GET /files/<sha256>/<filename>` serves the file from the disk cache, or first downloads it
  from the URL the index named for that hash, verifies the hash and stores it atomically. One
  lock per file: concurrent requests (a whole cluster installing at once) download it once.

Environment: `SCHERBELBERG_PYPI_UPSTREAM` (default https://pypi.org/simple) and
`SCHERBELBERG_PYPI_CACHE` (default /var/cache/scherbelberg/pypi).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import aiohttp
from aiohttp import web

from scherbelberg.errors import EmulatorInputError

logger = logging.getLogger(__name__)

UPSTREAM_ENV = "SCHERBELBERG_PYPI_UPSTREAM"
CACHE_ENV = "SCHERBELBERG_PYPI_CACHE"
DEFAULT_UPSTREAM = "https://pypi.org/simple"
DEFAULT_CACHE = Path("/var/cache/scherbelberg/pypi")
FRESH_SECONDS = 600.0
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
CHUNK = 256 * 1024

_SEPARATORS = re.compile(r"[-_.]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SDIST_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".tar")


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return _SEPARATORS.sub("-", name).lower()


def project_of(filename: str) -> str | None:
    """The (normalized) project a distribution file most likely belongs to, or None."""
    if filename.endswith((".whl", ".egg")):
        return normalize(filename.split("-", 1)[0])
    for suffix in _SDIST_SUFFIXES:
        if filename.endswith(suffix):
            stem = filename.removesuffix(suffix)
            return normalize(stem.rsplit("-", 1)[0]) if "-" in stem else None
    return None


def _valid_filename(filename: str) -> bool:
    return bool(filename) and "/" not in filename and "\\" not in filename and filename[0] != "."


def _sha256_of(entry: dict[str, Any]) -> str | None:
    sha = (entry.get("hashes") or {}).get("sha256")
    return sha if isinstance(sha, str) and _SHA256.fullmatch(sha) else None


def render_project(name: str, index: dict[str, Any]) -> str:
    """The PEP 503 page of one project (from PEP 691 JSON), linking to this mirror's /files/.
    Files without a sha256 are left out: the mirror verifies every file it serves."""
    title = html.escape(f"Links for {index.get('name', name)}")
    lines = [
        "<!DOCTYPE html>",
        '<html><head><meta name="pypi:repository-version" content="1.0">',
        f"<title>{title}</title></head><body>",
        f"<h1>{title}</h1>",
    ]
    for entry in index.get("files", []):
        filename, sha = entry.get("filename"), _sha256_of(entry)
        if sha is None or not isinstance(filename, str) or not _valid_filename(filename):
            continue
        attrs = f'href="/files/{sha}/{html.escape(quote(filename))}#sha256={sha}"'
        requires = entry.get("requires-python")
        if requires:
            attrs += f' data-requires-python="{html.escape(str(requires))}"'
        yanked = entry.get("yanked")
        if yanked:
            reason = yanked if isinstance(yanked, str) else ""
            attrs += f' data-yanked="{html.escape(reason)}"'
        lines.append(f"<a {attrs}>{html.escape(filename)}</a><br>")
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


def _read_cached(path: Path) -> tuple[dict[str, Any], float] | None:
    """A cached index and its age in seconds, or None."""
    try:
        with path.open("rb") as f:
            data = json.load(f)
            age = time.time() - os.fstat(f.fileno()).st_mtime
    except (OSError, ValueError):
        return None
    return (data, age) if isinstance(data, dict) else None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class PypiMirror:
    """The mirror's state (upstream, cache, what each hash is) and its aiohttp handlers."""

    def __init__(
        self,
        upstream: str | None = None,
        cache_dir: Path | str | None = None,
        fresh_seconds: float = FRESH_SECONDS,
        index_timeout: float = 10.0,
    ) -> None:
        self.upstream = (upstream or os.environ.get(UPSTREAM_ENV) or DEFAULT_UPSTREAM).rstrip("/")
        self.cache_dir = Path(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
        self.fresh_seconds = fresh_seconds
        # below pip's 15 s socket timeout, so a client gets our answer (stale page or 502)
        self.index_timeout = index_timeout
        self._files: dict[str, tuple[str, str]] = {}  # sha256 -> (upstream URL, filename)
        self._locks: dict[str, asyncio.Lock] = {}
        self._session: aiohttp.ClientSession | None = None

    def add_routes(self, app: web.Application) -> None:
        """Register /simple/ and /files/ (before any catch-all route of `app`)."""
        app.router.add_get("/simple/", self.handle_root)
        app.router.add_get("/simple", self.handle_slash)
        app.router.add_get("/simple/{project}/", self.handle_project)
        app.router.add_get("/simple/{project}", self.handle_slash)
        app.router.add_get("/files/{sha256}/{filename}", self.handle_file)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- upstream ------------------------------------------------------------------------------
    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "scherbelberg-emulator-pypi-mirror"}, trust_env=True
            )
        return self._session

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _remember(self, page_url: str, index: dict[str, Any]) -> None:
        for entry in index.get("files", []):
            sha, url, filename = _sha256_of(entry), entry.get("url"), entry.get("filename")
            if sha and isinstance(url, str) and isinstance(filename, str):
                self._files[sha] = (urljoin(page_url, url), filename)

    async def project_index(self, project: str) -> dict[str, Any] | None:
        """PyPI's JSON index of `project` (normalized): fresh from the cache, else from upstream,
        else stale from the cache. None when upstream says it does not exist."""
        page_url = f"{self.upstream}/{project}/"
        path = self.cache_dir / "simple" / f"{project}.json"
        async with self._lock("simple/" + project):
            cached = await asyncio.to_thread(_read_cached, path)
            if cached is not None and cached[1] < self.fresh_seconds:
                index = cached[0]
            else:
                try:
                    timeout = aiohttp.ClientTimeout(total=self.index_timeout)
                    async with self._client().get(
                        page_url, headers={"Accept": JSON_TYPE}, timeout=timeout
                    ) as resp:
                        if resp.status == 404:
                            return None
                        resp.raise_for_status()
                        body = await resp.read()
                    index = json.loads(body)
                    if not isinstance(index, dict):
                        raise EmulatorInputError("index is not a JSON object")
                    try:
                        await asyncio.to_thread(_write_atomic, path, body)
                    except OSError as exc:  # a full or read-only cache only costs freshness
                        logger.warning("cannot cache the index of %s: %r", project, exc)
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    if cached is None:
                        raise web.HTTPBadGateway(text=f"PyPI: {exc!r}\n") from None
                    logger.warning("PyPI index of %s failed (%r): serving stale", project, exc)
                    index = cached[0]
            self._remember(page_url, index)
            return index

    async def _download(self, url: str, sha: str, path: Path) -> None:
        """Stream `url` to `path`, verifying that its sha256 is `sha`; atomic."""
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        fd, tmp = await asyncio.to_thread(
            tempfile.mkstemp, dir=path.parent, prefix=".", suffix=".part"
        )
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=60)
                async with self._client().get(
                    url, headers={"Accept-Encoding": "identity"}, timeout=timeout
                ) as resp:
                    resp.raise_for_status()
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        digest.update(chunk)
                        await asyncio.to_thread(out.write, chunk)
            if digest.hexdigest() != sha:
                raise EmulatorInputError(f"sha256 of {url} is {digest.hexdigest()}, not {sha}")
            await asyncio.to_thread(os.replace, tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # -- handlers --------------------------------------------------------------------------
    async def handle_root(self, request: web.Request) -> web.Response:
        """A small index: the projects in the cache (PyPI's full list is not mirrored)."""

        def cached() -> list[str]:
            return sorted(p.stem for p in (self.cache_dir / "simple").glob("*.json"))

        links = "".join(
            f'<a href="/simple/{html.escape(p)}/">{html.escape(p)}</a><br>\n'
            for p in await asyncio.to_thread(cached)
        )
        return web.Response(
            text=f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n", content_type="text/html"
        )

    async def handle_slash(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(request.path + "/")

    async def handle_project(self, request: web.Request) -> web.Response:
        project = normalize(request.match_info["project"])
        index = await self.project_index(project)
        if index is None:
            raise web.HTTPNotFound(text=f"no project {project} on {self.upstream}\n")
        return web.Response(
            text=render_project(project, index),
            content_type="text/html",
            headers={"Cache-Control": "max-age=0"},
        )

    async def handle_file(self, request: web.Request) -> web.StreamResponse:
        sha, filename = request.match_info["sha256"], request.match_info["filename"]
        if not _SHA256.fullmatch(sha) or not _valid_filename(filename):
            raise web.HTTPNotFound()
        path = self.cache_dir / "files" / sha[:2] / sha / filename
        if not await asyncio.to_thread(path.is_file):
            async with self._lock("files/" + sha):
                if not await asyncio.to_thread(path.is_file):
                    await self._fetch_file(sha, filename, path)
        return web.FileResponse(path, headers={"Cache-Control": "max-age=31536000, immutable"})

    async def _fetch_file(self, sha: str, filename: str, path: Path) -> None:
        if sha not in self._files:
            # an index from before a restart: load the project's index to learn the URL
            project = project_of(filename)
            if project is not None:
                await self.project_index(project)
        url, known_name = self._files.get(sha, ("", ""))
        if not url or known_name != filename:
            raise web.HTTPNotFound(text=f"{sha}/{filename} is not in any index seen\n")
        try:
            await self._download(url, sha, path)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("download of %s failed: %r", url, exc)
            raise web.HTTPBadGateway(text=f"download failed: {exc!r}\n") from None
        logger.info("mirrored %s", filename)
