"""`scherbelberg emulator --background` / `--stop`: the local Hetzner in one step for a shell.

Why: in the foreground the emulator prints what a shell needs (HCLOUD_ENDPOINT, HCLOUD_TOKEN
and the dask config of a cluster on it) but keeps the terminal. In the background it is one
line: `eval "$(scherbelberg emulator --background)"`. The same `export` lines go to an env file
for other shells, the pid to a pid file for `--stop`, stderr to a log, all in `run_dir()`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from scherbelberg.errors import EmulatorError

from .service import READY_LINE

RUN_ENV = "SCHERBELBERG_EMULATOR_RUN"  # moves the directory (tests: one emulator each)
ROOT_RUN_DIR = Path("/run/scherbelberg")  # as root, next to the labs' locks
START_SECONDS = 600.0  # the first start builds the machine image (about a minute, or more)
STOP_SECONDS = 120.0  # every machine is torn down first
NOTICE_SECONDS = 2.0  # a start that takes longer is said on stderr (a failure is one line)
_NAME = re.compile(r"[A-Z][A-Z0-9_]*")  # an environment variable the emulator prints


class DaemonError(EmulatorError, RuntimeError):
    """One line for the user: why the background emulator could not start or stop."""


def run_dir() -> Path:
    """`$SCHERBELBERG_EMULATOR_RUN`; as root /run/scherbelberg (gone at reboot, like the
    emulator); else the user's state directory (machines need root: `--machines none`)."""
    override = os.environ.get(RUN_ENV)
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return ROOT_RUN_DIR
    import platformdirs

    return platformdirs.user_state_path("scherbelberg") / "emulator"


@dataclass(frozen=True)
class RunFiles:
    """The files of one background emulator."""

    directory: Path

    @property
    def pid(self) -> Path:
        return self.directory / "emulator.pid"

    @property
    def env(self) -> Path:
        """`export` lines for a shell; 0600, it holds the default project's token."""
        return self.directory / "emulator.env"

    @property
    def log(self) -> Path:
        return self.directory / "emulator.log"

    @property
    def out(self) -> Path:
        """The emulator's stdout: KEY=value lines, then READY_LINE (service.py)."""
        return self.directory / "emulator.out"

    @property
    def args(self) -> Path:
        return self.directory / "emulator.args"

    def forget(self) -> None:
        for path in (self.pid, self.env, self.out, self.args):
            path.unlink(missing_ok=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One `--background` or `--stop` at a time: two shells must not start two."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle = os.open(self.directory / "emulator.lock", os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            raise DaemonError(f"cannot use {self.directory}: {exc.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)


def is_emulator(pid: int) -> bool:
    """Alive, not a zombie, and an emulator (a pid left from before a reboot may be reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and b"scherbelberg.emulator" in cmdline


def running_pid(files: RunFiles) -> int | None:
    """The pid of the background emulator if it runs, else None (stale files are removed)."""
    try:
        pid = int(files.pid.read_text().strip())
    except (OSError, ValueError):
        return None
    if is_emulator(pid):
        return pid
    files.forget()
    return None


def _write_private(path: Path, text: str) -> None:
    handle = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(handle, "w") as file:
        file.write(text)


@dataclass
class Started:
    exports: str  # `export KEY=value` lines, shell-quoted
    pid: int
    already: bool  # it ran before this call: these are its settings


def start(
    args: list[str],
    files: RunFiles | None = None,
    say: Callable[[str], None] = lambda message: None,
) -> Started:
    """Start `python -m scherbelberg.emulator ARGS` detached and wait until it is ready.

    If one runs already with the same ARGS, return its settings; with other ARGS, refuse
    (the caller asked for a different emulator and would silently get the old one). `say`
    tells the user what they wait for; Ctrl-C while waiting stops the half-started one."""
    files = files or RunFiles(run_dir())
    with files.locked():
        pid = running_pid(files)
        if pid is not None:
            return _already_running(files, pid, args)
        files.forget()
        out = os.open(files.out, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        log = os.open(files.log, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "scherbelberg.emulator", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,  # a file, not a pipe: it must outlive this command
                stderr=log,
                start_new_session=True,  # not killed with this shell's process group (Ctrl-C)
            )
        finally:
            os.close(out)
            os.close(log)
        _write_private(files.pid, f"{process.pid}\n")
        _write_private(files.args, json.dumps(args) + "\n")
        try:
            settings = _wait_ready(process, files, say)
        except KeyboardInterrupt:
            _terminate(process.pid)
            files.forget()
            raise
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in settings.items())
        _write_private(files.env, exports)
        return Started(exports, process.pid, already=False)


def _already_running(files: RunFiles, pid: int, args: list[str]) -> Started:
    try:
        before = json.loads(files.args.read_text())
        exports = files.env.read_text()
    except (OSError, ValueError):
        raise DaemonError(
            f"a local Hetzner (pid {pid}) is starting or its files in {files.directory} are "
            "damaged: try again, or `scherbelberg emulator --stop`"
        ) from None
    if before != args:
        shown = " ".join(shlex.quote(a) for a in before) or "no options"
        raise DaemonError(
            f"a local Hetzner runs already (pid {pid}, started with {shown}): "
            "`scherbelberg emulator --stop` it first to start one with other options"
        )
    return Started(exports, pid, already=True)


def _wait_ready(
    process: subprocess.Popen[bytes], files: RunFiles, say: Callable[[str], None]
) -> dict[str, str]:
    """KEY=value lines until READY_LINE; an error with the log's last line if it exits first,
    and a stopped emulator if it is not ready before the deadline. A wait that is not short
    (the first start builds the machine image) is said, so the shell does not seem stuck."""
    began = time.monotonic()
    deadline = began + START_SECONDS
    noticed = False
    while True:
        lines = files.out.read_text(errors="replace").splitlines()
        if READY_LINE in lines:
            pairs = (line.split("=", 1) for line in lines if "=" in line)
            return {k: v for k, v in pairs if _NAME.fullmatch(k)}
        if process.poll() is not None:
            files.forget()
            raise DaemonError(f"the local Hetzner did not start: {_last_line(files.log)}")
        if not noticed and time.monotonic() - began >= NOTICE_SECONDS:
            say(f"starting the local Hetzner in the background (log: {files.log}) …")
            noticed = True
        if time.monotonic() > deadline:
            _terminate(process.pid)
            files.forget()
            raise DaemonError(
                f"the local Hetzner was not ready in {START_SECONDS:.0f} s, so it was stopped "
                f"(log: {files.log})"
            )
        time.sleep(0.1)


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    last = lines[-1].strip().removeprefix("error: ") if lines else "no output"
    return f"{last} (log: {log})"


def _terminate(pid: int) -> bool:
    """SIGTERM (it deletes its machines), wait; SIGKILL its session if that takes too long.
    True if it stopped in time."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline:
        if not is_emulator(pid):
            return True
        time.sleep(0.2)
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # its own session: pid is the group's id
    return False


def stop(files: RunFiles | None = None) -> int | None:
    """Stop the background emulator and wait until its machines are gone; its pid, or None
    if none runs."""
    files = files or RunFiles(run_dir())
    with files.locked():
        pid = running_pid(files)
        if pid is None:
            files.forget()
            return None
        try:
            stopped = _terminate(pid)
        except PermissionError:
            raise DaemonError(f"the local Hetzner (pid {pid}) is not yours to stop") from None
        files.forget()
        if not stopped:
            raise DaemonError(
                f"the local Hetzner (pid {pid}) did not stop in {STOP_SECONDS:.0f} s and was "
                "killed: `scherbelberg emulator --cleanup` removes what it left"
            )
        return pid
