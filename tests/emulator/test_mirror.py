"""The PyPI mirror (`scherbelberg.emulator.mirror`): against a fake PyPI (pages, hashes, one
download for many requests, stale pages, 404s), then for real: pip inside a machine installs
from it through the lab, and a package that does not exist fails fast."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shlex
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hcloud import Client
from hcloud.images import Image
from hcloud.server_types import ServerType

from scherbelberg.emulator.control import LocalHetzner
from scherbelberg.emulator.mirror import JSON_TYPE, PypiMirror, normalize, project_of
from tests.conftest import public_ip
from tests.machines import Keys, ssh_run

pytestmark = pytest.mark.mirror

WHEEL = b"wheel bytes " * 1000
SDIST = b"sdist bytes"
SHA_WHEEL = hashlib.sha256(WHEEL).hexdigest()
SHA_SDIST = hashlib.sha256(SDIST).hexdigest()
SHA_LIE = hashlib.sha256(b"something else").hexdigest()


@dataclass
class FakePypi:
    """What the fake upstream saw, and a switch to make it fail."""

    failing: bool = False
    downloads: dict[str, int] = field(default_factory=dict)
    index_requests: int = 0
    accept: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        async def index(request: web.Request) -> web.Response:
            self.index_requests += 1
            self.accept.append(request.headers.get("Accept", ""))
            if self.failing:
                return web.Response(status=503)
            if request.match_info["project"] != "demo-pkg":
                return web.Response(status=404)
            files = [
                {
                    "filename": "demo_pkg-1.0-py3-none-any.whl",
                    "url": "../../packages/demo_pkg-1.0-py3-none-any.whl",  # relative
                    "hashes": {"sha256": SHA_WHEEL},
                    "requires-python": ">=3.8,<4",
                },
                {
                    "filename": "demo-pkg-0.9.tar.gz",
                    "url": str(request.url.join(request.app.router["file"].url_for(
                        name="demo-pkg-0.9.tar.gz"))),
                    "hashes": {"sha256": SHA_SDIST},
                    "yanked": "broken <b>",
                },
                {
                    "filename": "demo-pkg-0.8.tar.gz",
                    "url": "/packages/demo-pkg-0.8.tar.gz",
                    "hashes": {"sha256": SHA_LIE},  # the bytes do not match
                    "yanked": True,
                },
                {"filename": "demo-pkg-0.1.zip", "url": "/packages/x.zip", "hashes": {}},
            ]  # fmt: skip
            body = {"meta": {"api-version": "1.1"}, "name": "demo-pkg", "files": files}
            return web.json_response(body, content_type=JSON_TYPE)

        async def file(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            self.downloads[name] = self.downloads.get(name, 0) + 1
            await asyncio.sleep(0.2)  # long enough for concurrent requests to pile up
            return web.Response(body=WHEEL if name.endswith(".whl") else SDIST)

        app = web.Application()
        app.router.add_get("/simple/{project}/", index)
        app.router.add_get("/packages/{name}", file, name="file")
        return app


@dataclass
class Setup:
    pypi: FakePypi
    upstream: str
    cache: Path
    mirror: PypiMirror
    client: TestClient[web.Request, web.Application]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    pypi = FakePypi()
    async with TestServer(pypi.app()) as upstream_server:
        upstream = str(upstream_server.make_url("/simple"))
        mirror = PypiMirror(upstream=upstream, cache_dir=tmp_path)
        app = web.Application()
        mirror.add_routes(app)
        async with TestClient(TestServer(app)) as client:
            yield Setup(pypi, upstream, tmp_path, mirror, client)
        await mirror.close()


def test_names() -> None:
    assert normalize("Foo.Bar__baz-Qux") == "foo-bar-baz-qux"
    assert project_of("Demo_Pkg-1.0-py3-none-any.whl") == "demo-pkg"
    assert project_of("demo-pkg-0.9.tar.gz") == "demo-pkg"
    assert project_of("zope.interface-6.0.zip") == "zope-interface"
    assert project_of("README") is None


async def test_project_page_links_to_the_mirror(setup: Setup) -> None:
    resp = await setup.client.get("/simple/Demo_Pkg/")  # any spelling of the name
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert setup.pypi.accept == [JSON_TYPE]
    assert (
        f'<a href="/files/{SHA_WHEEL}/demo_pkg-1.0-py3-none-any.whl#sha256={SHA_WHEEL}" '
        'data-requires-python="&gt;=3.8,&lt;4">demo_pkg-1.0-py3-none-any.whl</a>'
    ) in page
    assert 'data-yanked="broken &lt;b&gt;">demo-pkg-0.9.tar.gz</a>' in page
    assert 'data-yanked="">demo-pkg-0.8.tar.gz</a>' in page
    assert "0.1.zip" not in page  # no sha256, so nothing the mirror could verify
    # cached for a while: a second page does not ask upstream
    assert (await setup.client.get("/simple/demo-pkg/")).status == 200
    assert setup.pypi.index_requests == 1
    assert json.loads((setup.cache / "simple" / "demo-pkg.json").read_text())["name"] == "demo-pkg"
    # the root lists what is cached; a name without slash redirects
    assert "/simple/demo-pkg/" in await (await setup.client.get("/simple/")).text()
    resp = await setup.client.get("/simple/demo-pkg", allow_redirects=False)
    assert resp.status == 301 and resp.headers["Location"] == "/simple/demo-pkg/"


async def test_unknown_project_is_404_at_once(setup: Setup) -> None:
    start = time.monotonic()
    assert (await setup.client.get("/simple/no-such-thing/")).status == 404
    assert time.monotonic() - start < 2


async def test_concurrent_requests_download_once(setup: Setup) -> None:
    await setup.client.get("/simple/demo-pkg/")
    url = f"/files/{SHA_WHEEL}/demo_pkg-1.0-py3-none-any.whl"
    responses = await asyncio.gather(*(setup.client.get(url) for _ in range(8)))
    assert [r.status for r in responses] == [200] * 8
    assert all([await r.read() == WHEEL for r in responses])
    assert setup.pypi.downloads == {"demo_pkg-1.0-py3-none-any.whl": 1}
    stored = setup.cache / "files" / SHA_WHEEL[:2] / SHA_WHEEL / "demo_pkg-1.0-py3-none-any.whl"
    assert stored.read_bytes() == WHEEL
    assert [p.name for p in stored.parent.iterdir()] == [stored.name]  # no temporary left
    # an absolute upstream URL works as well as a relative one
    resp = await setup.client.get(f"/files/{SHA_SDIST}/demo-pkg-0.9.tar.gz")
    assert resp.status == 200 and await resp.read() == SDIST


async def test_wrong_hash_is_not_served_nor_stored(setup: Setup) -> None:
    await setup.client.get("/simple/demo-pkg/")
    resp = await setup.client.get(f"/files/{SHA_LIE}/demo-pkg-0.8.tar.gz")
    assert resp.status == 502
    assert not (setup.cache / "files" / SHA_LIE[:2] / SHA_LIE / "demo-pkg-0.8.tar.gz").exists()
    assert list((setup.cache / "files" / SHA_LIE[:2] / SHA_LIE).iterdir()) == []


async def test_unknown_or_mismatched_files_are_404(setup: Setup) -> None:
    await setup.client.get("/simple/demo-pkg/")
    other = "0" * 64
    assert (await setup.client.get(f"/files/{other}/demo_pkg-1.0-py3-none-any.whl")).status == 404
    assert (await setup.client.get(f"/files/{SHA_WHEEL}/other-1.0-py3-none-any.whl")).status == 404
    assert (await setup.client.get(f"/files/{SHA_WHEEL}/.hidden")).status == 404
    assert (await setup.client.get("/files/nothex/demo_pkg-1.0-py3-none-any.whl")).status == 404
    assert setup.pypi.downloads == {}


async def test_stale_page_when_upstream_fails(setup: Setup) -> None:
    await setup.client.get("/simple/demo-pkg/")
    setup.mirror.fresh_seconds = 0
    setup.pypi.failing = True
    resp = await setup.client.get("/simple/demo-pkg/")
    assert resp.status == 200 and "demo_pkg-1.0" in await resp.text()
    assert setup.pypi.index_requests == 2
    assert (await setup.client.get("/simple/never-seen/")).status == 502


async def test_files_after_a_restart(setup: Setup) -> None:
    """A new mirror (same cache) serves a file of an index it only has on disk."""
    await setup.client.get("/simple/demo-pkg/")
    mirror = PypiMirror(upstream=setup.upstream, cache_dir=setup.cache)
    app = web.Application()
    mirror.add_routes(app)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(f"/files/{SHA_WHEEL}/demo_pkg-1.0-py3-none-any.whl")
        assert resp.status == 200 and await resp.read() == WHEEL
    await mirror.close()
    assert setup.pypi.index_requests == 1  # the cached index was fresh enough


# -- real PyPI, real machines ------------------------------------------------------------------


@pytest.fixture
def index_url(local_hetzner: LocalHetzner) -> str:
    url = local_hetzner.control.info()["pip_index_url"]
    if url is None:
        pytest.skip("no machines, so no mirror")
    return str(url)


@pytest.mark.machines
def test_mirror_lists_real_files_to_the_host(index_url: str) -> None:
    with urllib.request.urlopen(index_url + "toolz/", timeout=30) as resp:
        page = resp.read().decode()
    assert "toolz-0.12.1-py3-none-any.whl</a>" in page
    assert "/files/" in page and "#sha256=" in page


@pytest.mark.machines
def test_mirror_pip_in_a_machine(hcloud_client: Client, index_url: str) -> None:
    """cloud-init's runcmd installs toolz from the mirror into a venv; a missing package fails
    fast with pip's own message; uv installs from it too. pip needs --trusted-host: the mirror
    is plain HTTP on a non-local address."""
    host = urlsplit(index_url).hostname
    assert host is not None
    pip = f"/opt/venv/bin/pip install --index-url {index_url} --trusted-host {host}"
    keys = Keys.generate()
    key = hcloud_client.ssh_keys.create(name="k", public_key=keys.client_public)
    response = hcloud_client.servers.create(
        name="pip-mirror",
        server_type=ServerType(name="cx23"),
        image=Image(name="debian-12"),
        ssh_keys=[key],
        user_data=keys.cloud_config(
            runcmd=[
                # the image is bare like Hetzner's: no python3-venv (the lab's apt cache has it)
                ["sh", "-c", "apt-get -q update && apt-get -qy install python3-venv"],
                ["python3", "-m", "venv", "/opt/venv"],
                ["sh", "-c", f"{pip} toolz==0.12.1 > /root/pip.log 2>&1"],
            ]
        ),
    )
    for action in [response.action, *response.next_actions]:
        action.wait_until_finished()
    ip = public_ip(response.server)

    async def check() -> None:
        await ssh_run(ip, keys, "cloud-init status --wait", deadline=120)
        script = "import toolz; print(toolz.__version__)"
        version = await ssh_run(ip, keys, f"/opt/venv/bin/python -c {shlex.quote(script)} || "
                                "cat /root/pip.log")  # fmt: skip
        assert version == "0.12.1\n"
        start = time.monotonic()
        out = await ssh_run(ip, keys, f"{pip} sbg-no-such-package-4711 2>&1; echo exit=$?")
        elapsed = time.monotonic() - start
        assert "No matching distribution found for sbg-no-such-package-4711" in out
        assert out.rstrip().endswith("exit=1")
        assert elapsed < 20, f"took {elapsed:.1f} s"
        # uv (what clusters use) reads the same pages, and needs no --trusted-host
        await ssh_run(ip, keys, f"{pip} uv==0.13.9")
        uv = f"/opt/venv/bin/uv pip install --python /opt/venv/bin/python --index-url {index_url}"
        out = await ssh_run(ip, keys, f"{uv} toolz==0.12.0 2>&1")
        assert "+ toolz==0.12.0" in out

    asyncio.run(check())
