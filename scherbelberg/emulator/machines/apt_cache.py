"""A pull-through apt cache for one lab's machines: Debian's apt-cacher-ng, fed by the host's
Debian mirror.

Why: machines have no internet, yet a bare Hetzner image must `apt-get install` (the product's
bootstrap installs python3-venv that way), as real servers do from mirror.hetzner.com. The cache
makes the packages they ask for real Debian packages from the mirror this host may reach, and
keeps them for the next run.

How machines reach it: apt-cacher-ng runs in the host's network namespace (it fetches from the
host's mirror) on a loopback address of its own (127.42.k.1, one per lab index, so labs never
collide); the emulator relays the lab's service address (198.18.k.253, port 3142, a socket made
inside the lab like the PyPI mirror's) to it. Each server gets apt sources that name
`http://198.18.k.253:3142/debian` (and `/debian-security` when the host has a security mirror),
written into its disk when it is created (`sources_for`), so images know nothing of the lab.

Files: the cached packages in /var/cache/scherbelberg/apt/lab-<k>/ (one directory per lab index:
an index is held by one emulator at a time, and two apt-cacher-ng must not share a cache); its
config, log and pid file in the instance's state directory (`<state>/sbg<k>/apt-cache/`), which
names the process on its command line, so the cleanup tool finds and kills the daemon of a
crashed emulator with its other machines' processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

from scherbelberg.emulator.machines.image import host_mirror, host_security_mirror
from scherbelberg.emulator.machines.lab import Lab
from scherbelberg.emulator.machines.util import stop_process
from scherbelberg.errors import EmulatorError

logger = logging.getLogger(__name__)

DEFAULT_CACHE_ROOT = Path("/var/cache/scherbelberg/apt")
PORT = 3142  # apt-cacher-ng's usual port, on the lab's service address
BACKEND_PORT = 13142  # on its own loopback address (not 3142: a system apt-cacher-ng on 0.0.0.0)
START_DEADLINE = 15.0  # seconds for the daemon to listen
STOP_DEADLINE = 5.0  # seconds between SIGTERM and SIGKILL
SIGNED_BY = "/usr/share/keyrings/debian-archive-keyring.gpg"  # in every Debian image


def cache_root() -> Path:
    """Where cached packages live: `SCHERBELBERG_APT_CACHE_DIR` or /var/cache/scherbelberg/apt."""
    env = os.environ.get("SCHERBELBERG_APT_CACHE_DIR")
    return Path(env) if env else DEFAULT_CACHE_ROOT


def backend_address(k: int) -> str:
    """The daemon's own loopback address for lab k (every 127/8 address is local on Linux)."""
    return f"127.42.{k}.1"


def config(k: int, state: Path, cache: Path, mirror: str, security: str | None) -> str:
    """apt-cacher-ng's configuration: only the Debian archive (and security), from the host's
    mirrors, under the paths `/debian` and `/debian-security`."""
    lines = [
        f"CacheDir: {cache}",
        f"LogDir: {state}",
        "SupportDir: /usr/lib/apt-cacher-ng",
        f"BindAddress: {backend_address(k)}:{BACKEND_PORT}",
        f"SocketPath: {state}/socket",
        f"PidFile: {state}/pid",
        "ForeGround: 1",
        f"Remap-debrep: /debian ; {mirror}",
        # a failed download is an error the machine sees, not a hang
        "NetworkTimeout: 60",
        "ExThreshold: 4",
    ]
    if security:
        lines.append(f"Remap-secdeb: /debian-security ; {security}")
    return "\n".join(lines) + "\n"


def sources_for(base_url: str, suite: str, security: bool) -> str:
    """The apt sources (deb822) of a server of Debian `suite` behind the cache at `base_url`."""
    text = (
        f"Types: deb\nURIs: {base_url}/debian\nSuites: {suite} {suite}-updates\n"
        f"Components: main\nSigned-By: {SIGNED_BY}\n"
    )
    if security:
        text += (
            f"\nTypes: deb\nURIs: {base_url}/debian-security\nSuites: {suite}-security\n"
            f"Components: main\nSigned-By: {SIGNED_BY}\n"
        )
    return text


class AptCache:
    """apt-cacher-ng for one lab, and the relay that makes it reachable from the machines."""

    def __init__(self, lab: Lab, state: Path, cache: Path | None = None) -> None:
        self._lab = lab
        self._state = state
        self._cache = cache
        self._mirror = host_mirror()
        self._security = host_security_mirror()
        self._proc: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The cache as machines reach it."""
        return f"http://{self._lab.echo_address}:{PORT}"

    def sources(self, suite: str) -> str:
        """apt sources for a server of Debian `suite` in this lab."""
        return sources_for(self.url, suite, self._security is not None)

    async def start(self) -> None:
        k = self._lab.index
        cache = self._cache or cache_root() / f"lab-{k}"
        for d in (self._state, cache):
            await asyncio.to_thread(d.mkdir, parents=True, exist_ok=True)
        conf = config(k, self._state, cache, self._mirror, self._security)
        (self._state / "acng.conf").write_text(conf)
        log = await asyncio.to_thread(open, self._state / "daemon.log", "ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                "apt-cacher-ng", "-c", str(self._state),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        await self._wait_listening(k)
        self._relay = await asyncio.start_server(self._forward, sock=self._lab.service_socket(PORT))
        logger.info("apt cache for %s at %s (cache %s)", self._lab.prefix, self.url, cache)

    async def _wait_listening(self, k: int) -> None:
        deadline = time.monotonic() + START_DEADLINE
        while True:
            assert self._proc is not None
            if self._proc.returncode is not None:
                raise EmulatorError(f"apt-cacher-ng exited {self._proc.returncode}: {self._tail()}")
            try:
                _r, w = await asyncio.open_connection(backend_address(k), BACKEND_PORT)
            except OSError:
                if time.monotonic() > deadline:
                    raise EmulatorError(
                        f"apt-cacher-ng not listening after {START_DEADLINE:.0f} s: {self._tail()}"
                    ) from None
                await asyncio.sleep(0.1)
                continue
            w.close()
            return

    def _tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self._state / "daemon.log").read_text()[-500:].strip()
        return ""

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            up_r, up_w = await asyncio.open_connection(backend_address(self._lab.index),
                                                       BACKEND_PORT)  # fmt: skip
        except OSError:
            client_w.close()
            self._connections.discard(task)
            return
        try:
            await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))
        finally:
            for w in (up_w, client_w):
                w.close()
            self._connections.discard(task)

    async def stop(self) -> None:
        if self._relay is not None:
            self._relay.close()
            for task in list(self._connections):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._relay.wait_closed(), STOP_DEADLINE)
            self._relay = None
        proc, self._proc = self._proc, None
        await stop_process(proc, STOP_DEADLINE)
        await asyncio.to_thread(shutil.rmtree, self._state, True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then pass the end on (HTTP clients may half-close)."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
