"""Issue 7: the local Hetzner in one step for a shell. `eval "$(scherbelberg emulator
--background)"` gives a shell everything; `--stop` ends it; what goes wrong is one line.

API only (`--machines none`), so these run anywhere; tests/cli/test_readme.py runs the
README's example on real machines this way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hcloud import Client

from scherbelberg.emulator import daemon
from tests.cli.conftest import ROOT

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return tmp_path / "run"


def environment(run: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HCLOUD_", "HETZNER", "DASK_SCHERBELBERG"))
    }
    env[daemon.RUN_ENV] = str(run)
    env["PYTHONPATH"] = str(ROOT)
    return env


def emulator(run: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scherbelberg", "emulator", *args],
        env=environment(run),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def bash(run: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euc", script],
        env=environment(run),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def alive(pid: int) -> bool:
    return daemon.is_emulator(pid)


def my_emulators() -> list[int]:
    """This process's children that are emulators and alive."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and alive(int(stat.parent.name)):
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def stopped(run: Path) -> Iterator[None]:
    """Whatever a test started is stopped afterwards."""
    yield
    emulator(run, "--stop")


def test_eval_background_then_stop(run: Path, stopped: None) -> None:
    python = sys.executable
    shell = bash(
        run,
        f"""
        eval "$({python} -m scherbelberg emulator --background --machines none)"
        {python} -c 'import os, hcloud; c = hcloud.Client(os.environ["HCLOUD_TOKEN"],
            api_endpoint=os.environ["HCLOUD_ENDPOINT"]); print(len(c.locations.get_all()))'
        """,
    )
    assert shell.returncode == 0, shell.stderr
    assert int(shell.stdout.strip()) >= 5  # the shell reached the emulator with its settings
    assert "local Hetzner ready in the background" in shell.stderr
    # the env file: private (the token), and another shell can source it
    env_file = run / "emulator.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    sourced = bash(run, f'. {env_file}; echo "$HCLOUD_ENDPOINT $HCLOUD_TOKEN"')
    endpoint, token = sourced.stdout.split()
    assert Client(token, api_endpoint=endpoint).server_types.get_all()
    pid = int((run / "emulator.pid").read_text())
    assert alive(pid)

    # a second --background with the same options: the running one's settings, said so
    again = emulator(run, "--background", "--machines", "none")
    assert again.returncode == 0, again.stderr
    assert again.stdout == env_file.read_text()
    assert f"runs already (pid {pid})" in again.stderr
    # with other options: refused in one line, nothing for eval
    other = emulator(run, "--background", "--machines", "none", "--seed", "1")
    assert other.returncode == 1 and other.stdout == ""
    assert other.stderr.count("\n") == 1 and "--stop" in other.stderr, other.stderr

    done = emulator(run, "--stop")
    assert done.returncode == 0, done.stderr
    assert f"stopped (pid {pid})" in done.stderr
    assert not alive(pid)
    assert not env_file.exists() and not (run / "emulator.pid").exists()
    nothing = emulator(run, "--stop")
    assert nothing.returncode == 0 and "no local Hetzner runs" in nothing.stderr


def test_a_start_that_fails_is_one_line(run: Path, stopped: None) -> None:
    failed = emulator(run, "--background", "--machines", "none", "--host", "192.0.2.77")
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith("error: the local Hetzner did not start:"), failed.stderr
    assert "cannot assign requested address" in failed.stderr
    assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
    assert not (run / "emulator.pid").exists() and not (run / "emulator.env").exists()


def test_bad_options_are_refused_before_it_starts(run: Path) -> None:
    both = emulator(run, "--background", "--stop")
    assert both.returncode == 2 and "cannot be combined" in both.stderr
    fault = emulator(run, "--background", "--machines", "none", "--fault", "bogus")
    assert fault.returncode == 2 and "--fault" in fault.stderr
    assert not (run / "emulator.pid").exists()


def test_a_stale_pid_file_is_not_an_emulator(run: Path, stopped: None) -> None:
    """After a reboot the pid may belong to another process: it is neither reused nor killed."""
    run.mkdir()
    other = subprocess.Popen(["sleep", "60"])
    try:
        (run / "emulator.pid").write_text(f"{other.pid}\n")
        (run / "emulator.env").write_text("export HCLOUD_TOKEN=stale\n")
        started = emulator(run, "--background", "--machines", "none")
        assert started.returncode == 0, started.stderr
        assert "stale" not in started.stdout and "HCLOUD_TOKEN=" in started.stdout
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_not_ready_before_the_deadline_is_stopped(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon, "START_SECONDS", 0.0)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    files = daemon.RunFiles(run)
    before = set(my_emulators())  # e.g. the session's own local Hetzner, a child too
    with pytest.raises(daemon.DaemonError, match="not ready in 0 s, so it was stopped"):
        daemon.start(["--machines", "none"], files)
    assert daemon.running_pid(files) is None
    assert not files.pid.exists()
    assert set(my_emulators()) - before == set()  # SIGTERM'd and gone, not left running


def test_ctrl_c_while_it_starts_stops_it(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the wait: no half-started emulator is left behind."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def press_ctrl_c_soon(message: str) -> None:  # once the emulator process exists
        signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.05)

    monkeypatch.setattr(daemon, "NOTICE_SECONDS", 0.0)  # say() at once: the wait has begun
    files = daemon.RunFiles(run)
    before = set(my_emulators())  # e.g. the session's own local Hetzner, a child too
    previous = signal.getsignal(signal.SIGALRM)
    try:
        with pytest.raises(KeyboardInterrupt):
            daemon.start(["--machines", "none"], files, say=press_ctrl_c_soon)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert set(my_emulators()) - before == set()
    assert daemon.running_pid(files) is None and not files.pid.exists()


def test_run_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Root: /run/scherbelberg, next to the labs' locks; others: their state directory."""
    monkeypatch.delenv(daemon.RUN_ENV, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert daemon.run_dir() == Path("/run/scherbelberg")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert daemon.run_dir() == tmp_path / "scherbelberg" / "emulator"
    monkeypatch.setenv(daemon.RUN_ENV, "/somewhere")
    assert daemon.run_dir() == Path("/somewhere")
