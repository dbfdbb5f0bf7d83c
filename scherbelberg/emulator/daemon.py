"""`scherbelberg emulator --background` / `--stop`: the local Hetzner in one step for a shell.

Why: in the foreground the emulator prints what a shell needs (HCLOUD_ENDPOINT, HCLOUD_TOKEN
and the dask config of a cluster on it) but keeps the terminal. In the background it is one
line: `eval "$(scherbelberg emulator --background)"`. The same `export` lines are written to
ENV_FILE for other shells (`. /run/scherbelberg/emulator.env`), its pid to PID_FILE for
`--stop`, and its log to LOG_FILE.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from .service import READY_LINE

RUN_DIR = Path(os.environ.get("SCHERBELBERG_EMULATOR_RUN") or "/run/scherbelberg")
PID_FILE = RUN_DIR / "emulator.pid"
ENV_FILE = RUN_DIR / "emulator.env"
LOG_FILE = RUN_DIR / "emulator.log"
START_SECONDS = 600.0  # the first start builds the machine image (about a minute, or more)
STOP_SECONDS = 120.0  # every machine is torn down first


class DaemonError(RuntimeError):
    """One line for the user: why the background emulator could not start or stop."""


def running_pid() -> int | None:
    """The pid of a background emulator that is alive, else None (stale files are removed)."""
    try:
        pid = int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        PID_FILE.unlink(missing_ok=True)
        ENV_FILE.unlink(missing_ok=True)
        return None
    except PermissionError:
        pass  # alive, someone else's
    return pid


def start(args: list[str]) -> str:
    """Start `python -m scherbelberg.emulator ARGS` detached; return the `export` lines."""
    if running_pid() is not None:
        return ENV_FILE.read_text()
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_FILE.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "scherbelberg.emulator", *args],
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # not killed with this shell's process group (Ctrl-C)
    )
    PID_FILE.write_text(f"{process.pid}\n")
    assert process.stdout is not None
    settings: dict[str, str] = {}
    deadline = time.monotonic() + START_SECONDS
    # KEY=value lines, then READY_LINE (service.py); the pipe closes if the emulator fails.
    # A line blocks at most until the emulator dies or is ready (its own steps have deadlines).
    for line in process.stdout:
        if line.strip() == READY_LINE or time.monotonic() > deadline:
            break
        key, sep, value = line.strip().partition("=")
        if sep and key.isupper():
            settings[key] = value
    if "HCLOUD_TOKEN" not in settings:
        process.kill()
        PID_FILE.unlink(missing_ok=True)
        tail = LOG_FILE.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise DaemonError(f"the local Hetzner did not start: {tail[0]} (log: {LOG_FILE})")
    process.stdout.close()  # the emulator prints nothing more on stdout
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in settings.items())
    ENV_FILE.write_text(exports)
    ENV_FILE.chmod(0o600)  # the token of its default project
    return exports


def stop() -> bool:
    """SIGTERM the background emulator and wait until it has torn its machines down."""
    pid = running_pid()
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        raise DaemonError(f"the local Hetzner (pid {pid}) did not stop in {STOP_SECONDS:.0f} s")
    PID_FILE.unlink(missing_ok=True)
    ENV_FILE.unlink(missing_ok=True)
    return True
