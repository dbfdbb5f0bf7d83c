"""Find and remove what a crashed (SIGKILLed) emulator left behind.

Why: a live emulator holds the flock on /run/scherbelberg/lab-<k>.lock; when it dies without
`stop()`, its machines keep running and its namespaces, host veth, cgroups and state directory
stay. Anything named `sbg<k>...` whose lock is not held is such a leftover. Everything here is
safe to call when nothing is left (and never touches a live instance's objects).

Machine processes are found two ways: by network namespace (every process inside a server runs
in `sbg<k>-s<id>`, each private network's dnsmasq in `sbg<k>-n<id>`) and by command line (the
`systemd-nspawn` supervisor runs in the host's namespace but names its netns and directory on
the command line).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from scherbelberg.emulator.machines import cgroups
from scherbelberg.emulator.machines.lab_names import (
    LOCK_DIR,
    NETNS_DIR,
    PREFIX,
    host_veth,
    lock_path,
    run_dir,
)
from scherbelberg.emulator.machines.util import run_sync

DEFAULT_STATE_DIR = Path("/var/lib/scherbelberg/emulator")


def state_dir() -> Path:
    """Where machines' disks live: `SCHERBELBERG_EMULATOR_DIR` or /var/lib/scherbelberg/emulator."""
    env = os.environ.get("SCHERBELBERG_EMULATOR_DIR")
    return Path(env) if env else DEFAULT_STATE_DIR


@dataclass(frozen=True)
class Leftover:
    index: int
    kind: str  # "process", "mount", "netns", "link", "cgroup", "state", "run" (dnsmasq's files)
    what: str


_NS_RE = re.compile(rf"^{PREFIX}(\d+)-")
_LINK_RE = re.compile(rf"^{PREFIX}(\d+)h$")
_STATE_RE = re.compile(rf"^{PREFIX}(\d+)$")


def is_live(k: int, lock_dir: Path = LOCK_DIR) -> bool:
    """True when an emulator holds instance k's lock."""
    p = lock_path(k, lock_dir)
    if not p.exists():
        return False
    fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock we may have taken
    return False


def _netns_names(k: int | None = None) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    names = []
    for p in sorted(NETNS_DIR.iterdir()):
        m = _NS_RE.match(p.name)
        if m and (k is None or int(m.group(1)) == k):
            names.append(p.name)
    return names


def _host_links() -> list[str]:
    return [n for n in os.listdir("/sys/class/net") if _LINK_RE.match(n)]


def _ns_inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _processes(k: int, base: Path) -> dict[int, str]:
    """pid -> description of every process belonging to instance k."""
    inodes = {i for n in _netns_names(k) if (i := _ns_inode(NETNS_DIR / n)) is not None}
    markers = (f"{NETNS_DIR}/{PREFIX}{k}-", f"{base}/{PREFIX}{k}/", f"{run_dir(k)}/")
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            net = os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue
        if net in inodes or any(m in cmd for m in markers):
            found[pid] = cmd.strip()[:120]
    for g in cgroups.instance_groups(f"{PREFIX}{k}"):
        for pid in cgroups.pids_below(g):
            found.setdefault(pid, f"in {g}")
    return found


def _mounts(k: int, base: Path) -> list[str]:
    prefix = f"{base}/{PREFIX}{k}/"
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if mp.startswith(prefix):
            out.append(mp)
    return sorted(out, key=len, reverse=True)


def _instances(base: Path) -> set[int]:
    ks = {int(m.group(1)) for n in _netns_names() if (m := _NS_RE.match(n))}
    ks |= {int(m.group(1)) for n in _host_links() if (m := _LINK_RE.match(n))}
    for d in (base, LOCK_DIR):
        if d.is_dir():
            ks |= {int(m.group(1)) for p in d.iterdir() if (m := _STATE_RE.match(p.name))}
    return ks


def instance_leftovers(k: int, base: Path | None = None) -> list[Leftover]:
    """Everything of instance k that exists now (live or not)."""
    base = base or state_dir()
    items = [Leftover(k, "process", f"{pid} {cmd}") for pid, cmd in _processes(k, base).items()]
    items += [Leftover(k, "mount", m) for m in _mounts(k, base)]
    items += [Leftover(k, "netns", n) for n in _netns_names(k)]
    items += [Leftover(k, "link", n) for n in _host_links() if n == host_veth(k)]
    items += [Leftover(k, "cgroup", str(g)) for g in cgroups.instance_groups(f"{PREFIX}{k}")]
    if (base / f"{PREFIX}{k}").exists():
        items.append(Leftover(k, "state", str(base / f"{PREFIX}{k}")))
    if run_dir(k).exists():
        items.append(Leftover(k, "run", str(run_dir(k))))
    return items


def find_leftovers(base: Path | None = None, lock_dir: Path = LOCK_DIR) -> list[Leftover]:
    """What dead instances (lock not held) left behind."""
    base = base or state_dir()
    return [
        item
        for k in sorted(_instances(base))
        if not is_live(k, lock_dir)
        for item in instance_leftovers(k, base)
    ]


def remove_instance_sync(k: int, base: Path | None = None) -> None:
    """Remove everything of instance k. The caller makes sure it is dead (or is its owner)."""
    base = base or state_dir()
    deadline = time.monotonic() + 10
    while (procs := _processes(k, base)) and time.monotonic() < deadline:
        for pid in procs:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for m in _mounts(k, base):
        run_sync("umount", "-l", m, check=False)
    for n in _netns_names(k):
        run_sync("ip", "netns", "del", n, check=False)
    if host_veth(k) in _host_links():
        run_sync("ip", "link", "del", host_veth(k), check=False)
    for g in cgroups.instance_groups(f"{PREFIX}{k}"):
        cgroups.remove_tree(g)
    shutil.rmtree(base / f"{PREFIX}{k}", ignore_errors=True)
    shutil.rmtree(run_dir(k), ignore_errors=True)


async def remove_instance(k: int, base: Path | None = None) -> None:
    await asyncio.to_thread(remove_instance_sync, k, base)


def remove_network_objects_sync(k: int) -> None:
    for n in _netns_names(k):
        run_sync("ip", "netns", "del", n, check=False)
    if host_veth(k) in _host_links():
        run_sync("ip", "link", "del", host_veth(k), check=False)
    shutil.rmtree(run_dir(k), ignore_errors=True)


async def remove_network_objects(k: int) -> None:
    """Namespaces, the host veth and runtime files of instance k (the lab's own teardown)."""
    await asyncio.to_thread(remove_network_objects_sync, k)


def remove_leftovers(base: Path | None = None, lock_dir: Path = LOCK_DIR) -> list[Leftover]:
    """Remove what dead instances left behind; returns what was found."""
    base = base or state_dir()
    found = find_leftovers(base, lock_dir)
    for k in sorted({item.index for item in found}):
        if not is_live(k, lock_dir):
            remove_instance_sync(k, base)
    return found
