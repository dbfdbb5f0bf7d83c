"""The exit guard's SIGTERM handler changes nothing but the cleanup: a process with nothing
to delete dies of SIGTERM as before, and a program's own handler is never replaced."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.cli.conftest import ROOT

SCRIPT = """
import signal, sys, time
from scherbelberg.cluster import exit_guard
if sys.argv[1] == "own":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
exit_guard.install()
exit_guard.install()  # idempotent
print("ready", flush=True)
time.sleep(60)
"""


def terminated(*args: str) -> subprocess.CompletedProcess[str]:
    """Run SCRIPT, send SIGTERM once it is ready; its exit status and output."""
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n", process.communicate(timeout=30)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_nothing_guarded_dies_of_sigterm_as_before() -> None:
    result = terminated("default")
    assert result.returncode == -signal.SIGTERM, result.stderr
    assert result.stderr == ""


def test_a_programs_own_handler_decides() -> None:
    result = terminated("own")
    assert result.returncode == 7, result.stderr
