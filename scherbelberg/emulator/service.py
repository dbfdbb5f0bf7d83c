"""Run the local Hetzner: machines backend + API server, until interrupted.

`serve()` is what `scherbelberg emulator` and `python -m scherbelberg.emulator` run. It prints
`HCLOUD_ENDPOINT=…` and `HCLOUD_TOKEN=…` on stdout before anything else, so the `hcloud` CLI
and scherbelberg can use it at once; every other message goes to stderr. With machines, three
more lines follow, the dask config of a cluster here: `DASK_SCHERBELBERG__CLIENT_ADDRESS_URL=…`
(the address echo), `DASK_SCHERBELBERG__PIP_INDEX_URL=…` (the PyPI mirror),
`DASK_SCHERBELBERG__PYTHON_DOWNLOADS_JSON_URL=…` (uv's Pythons, built here) and
`DASK_SCHERBELBERG__REAPER_ENDPOINT=…` (the API as machines reach it); then READY_LINE, which
`--background` (daemon.py) waits for before it hands a shell these lines as `export`s.
SIGINT/SIGTERM tear down every machine it started.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass, field

from aiohttp import web

from scherbelberg.errors import EmulatorError

from .api.app import make_app
from .faults import Faults
from .latency import INSTANT, LatencyProfile
from .machines.base import MachineBackend
from .model import static_catalog
from .model.world import World

log = logging.getLogger(__name__)
READY_LINE = "# local Hetzner ready"


@dataclass
class EmulatorOptions:
    host: str = "127.0.0.1"
    port: int = 0
    latency: LatencyProfile = INSTANT
    faults: Faults = field(default_factory=Faults)
    machines: str = "nspawn"  # nspawn | none
    token: str | None = None


class MachinesUnavailable(EmulatorError, RuntimeError):
    """This host cannot run the local Hetzner's machines; the message says what is missing."""


def make_backend(kind: str) -> MachineBackend:
    if kind == "none":
        from .machines.null import NullBackend

        return NullBackend()
    if kind != "nspawn":
        raise MachinesUnavailable(f"unknown machines backend {kind!r} (use nspawn or none)")
    from .machines.nspawn import NspawnBackend, missing_requirements

    missing = missing_requirements()
    if missing:
        raise MachinesUnavailable("cannot run local machines: " + "; ".join(missing))
    return NspawnBackend()


class Emulator:
    """A running local Hetzner inside this event loop (used by `serve` and by in-process tests)."""

    def __init__(self, options: EmulatorOptions) -> None:
        self.options = options
        self.backend = make_backend(options.machines)
        self.world = World(self.backend, options.latency, options.faults)
        self.project = self.world.add_project(name="default", token=options.token)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        host = self.options.host if ":" not in self.options.host else f"[{self.options.host}]"
        return f"http://{host}:{self.port}/v1"

    @property
    def token(self) -> str:
        return self.project.token

    async def start(self) -> None:
        await self.backend.start()
        try:
            await self.backend.prepare_images()
            for image in static_catalog.SYSTEM_IMAGES:
                self.backend.register_system_image(image.id)
            app = make_app(self.world, admin_token=self.project.token)
            # long query strings (many ?id=) must reach the handler, not die in the parser
            self._runner = web.AppRunner(
                app,
                access_log=None,
                handle_signals=False,
                max_line_size=256 * 1024,
                max_field_size=64 * 1024,
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.options.host, self.options.port)
            await site.start()
            self.port = int(self._runner.addresses[0][1])
            # the same API inside the lab, as machines reach it (api.hetzner.cloud for real)
            lab_socket = self.backend.api_socket()
            if lab_socket is not None:
                await web.SockSite(self._runner, lab_socket).start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await self.world.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.backend.stop()


async def serve(options: EmulatorOptions) -> None:
    emulator = Emulator(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await emulator.start()
        print(f"HCLOUD_ENDPOINT={emulator.endpoint}", flush=True)
        print(f"HCLOUD_TOKEN={emulator.token}", flush=True)
        backend = emulator.backend
        # the dask config of a cluster on this local Hetzner (after the two lines above)
        if backend.echo_url:
            print(f"DASK_SCHERBELBERG__CLIENT_ADDRESS_URL={backend.echo_url}", flush=True)
        if backend.pip_index_url:
            print(f"DASK_SCHERBELBERG__PIP_INDEX_URL={backend.pip_index_url}", flush=True)
        if backend.python_downloads_json_url:  # uv's Pythons built here (interpreters.py)
            url = backend.python_downloads_json_url
            print(f"DASK_SCHERBELBERG__PYTHON_DOWNLOADS_JSON_URL={url}", flush=True)
        if backend.api_url:  # the API as machines reach it, for a node's reaper
            print(f"DASK_SCHERBELBERG__REAPER_ENDPOINT={backend.api_url}", flush=True)
        # the end of what a shell needs (a comment for `eval`, a marker for --background)
        print(READY_LINE, flush=True)
        print(
            f"local Hetzner ready ({backend.name} machines, {options.latency.name} latency); "
            f"this host is {backend.client_address} to its machines"
            + (f", address echo at {backend.echo_url}" if backend.echo_url else ""),
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        print("stopping: deleting every machine", file=sys.stderr, flush=True)
    finally:
        await emulator.stop()
