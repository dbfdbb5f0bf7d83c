"""Small helpers shared by the machine backend: running commands, entering network namespaces.

Why: the backend drives `ip`, `nft` and friends; one place runs them the same way (async, with
their stderr in the exception), and one place knows how to switch a thread into a network
namespace (Python 3.11 has no `os.setns`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
from collections.abc import Iterator

from scherbelberg.errors import EmulatorError

logger = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000


class CommandError(EmulatorError, RuntimeError):
    """A command failed; the message holds the command line and what it printed."""

    def __init__(self, cmd: list[str], returncode: int, output: str) -> None:
        super().__init__(f"{' '.join(cmd)} failed ({returncode}): {output.strip()}")
        self.cmd = cmd
        self.returncode = returncode
        self.output = output


async def run(*cmd: str, check: bool = True, input: str | None = None) -> str:
    """Run a command, return its stdout; raise `CommandError` on failure when `check`."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate(input.encode() if input is not None else None)
    if check and proc.returncode != 0:
        raise CommandError(list(cmd), proc.returncode or 0, (err or out).decode(errors="replace"))
    return out.decode(errors="replace")


def run_sync(*cmd: str, check: bool = True) -> str:
    """`run` for code that is not async (cleanup tools)."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, errors="replace")
    if check and proc.returncode != 0:
        raise CommandError(list(cmd), proc.returncode, proc.stderr or proc.stdout)
    return proc.stdout


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python >= 3.12
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@contextlib.contextmanager
def in_netns(path: str) -> Iterator[None]:
    """Run the block with the calling thread in the network namespace at `path`.

    Sockets created inside stay in that namespace after the block. Only this thread moves.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


async def stop_process(proc: asyncio.subprocess.Process | None, deadline: float) -> None:
    """SIGTERM, then SIGKILL when `proc` has not exited within `deadline` seconds; waits for
    it either way (no zombie). Nothing happens when it has already exited."""
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), deadline)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
