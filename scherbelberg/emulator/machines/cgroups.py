"""Per-machine control groups: a memory limit and a CPU quota like the server type's, best effort.

Why: a cx22 has 4 GiB and 2 vCPUs; a machine that may use the whole host behaves differently
(and a runaway guest could starve the emulator). Each machine gets its own group below the
emulator's own group in every hierarchy we can write to (cgroup v1 controllers on a hybrid host
such as this one, the v2 tree elsewhere). Limits that cannot be set are logged and skipped. The
groups also let us find (and kill) every process of a machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Hierarchy:
    mount: Path  # where the hierarchy is mounted
    kind: str  # "memory", "cpu", "systemd" (v1 name=systemd) or "unified" (v2)
    own: str  # this process's group in it ("/..."), from /proc/self/cgroup

    def group(self, relative: str) -> Path:
        return self.mount / self.own.lstrip("/") / relative


def hierarchies() -> list[Hierarchy]:
    """The hierarchies this process can put machines in, with its own place in each."""
    own: dict[str, str] = {}
    for line in _read("/proc/self/cgroup").splitlines():
        _id, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            own[c] = path
    found: list[Hierarchy] = []
    for line in _read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        mount, fstype, options = Path(fields[4]), rfields[0], rfields[2].split(",")
        if fstype == "cgroup2" and "" in own:
            found.append(Hierarchy(mount, "unified", own[""]))
        elif fstype == "cgroup":
            for kind, key in (("memory", "memory"), ("cpu", "cpu"), ("systemd", "name=systemd")):
                if key in options and key in own:
                    found.append(Hierarchy(mount, kind, own[key]))
    return found


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _write(path: Path, value: str, quiet: bool = False) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError as e:
        (logger.debug if quiet else logger.info)(
            "cgroup: cannot write %s to %s: %s", value, path, e
        )
        return False


class MachineCgroups:
    """The groups of one machine: `<own group>/<instance>/s<server id>` in each hierarchy."""

    def __init__(self, instance: str, name: str) -> None:
        self.relative = f"{instance}/{name}"
        self.groups: list[Path] = []  # created groups, the launcher joins each
        self.limits: dict[str, str] = {}  # what was set, for reports and tests

    def create(self, memory_mib: int, cpus: int) -> None:
        self.remove()
        for h in hierarchies():
            g = h.group(self.relative)
            try:
                g.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                logger.info("cgroup: cannot create %s: %s", g, e)
                continue
            if h.kind == "memory":
                if _write(g / "memory.limit_in_bytes", str(memory_mib * 1024 * 1024)):
                    self.limits["memory.limit_in_bytes"] = str(memory_mib * 1024 * 1024)
            elif h.kind == "cpu":
                if _write(g / "cpu.cfs_period_us", str(CPU_PERIOD_US)) and _write(
                    g / "cpu.cfs_quota_us", str(cpus * CPU_PERIOD_US)
                ):
                    self.limits["cpu.cfs_quota_us"] = str(cpus * CPU_PERIOD_US)
                if _write(g / "cpu.shares", str(1024 * cpus)):
                    self.limits["cpu.shares"] = str(1024 * cpus)
            elif h.kind == "unified":
                self._v2_limits(h, g, memory_mib, cpus)
            self.groups.append(g)

    def _v2_limits(self, h: Hierarchy, g: Path, memory_mib: int, cpus: int) -> None:
        available = _read(g / "cgroup.controllers").split()
        if not available and (g.parent / "cgroup.subtree_control").exists():
            # Enable memory and cpu down from our own group (fails where our own group holds
            # processes, v2's "no internal processes" rule; then there are no v2 limits).
            parent = g.parent
            for c in ("memory", "cpu"):
                for p in (h.group(""), parent):
                    _write(p / "cgroup.subtree_control", f"+{c}", quiet=True)
            available = _read(g / "cgroup.controllers").split()
        if "memory" in available and _write(g / "memory.max", str(memory_mib * 1024 * 1024)):
            self.limits["memory.max"] = str(memory_mib * 1024 * 1024)
        if "cpu" in available and _write(g / "cpu.max", f"{cpus * CPU_PERIOD_US} {CPU_PERIOD_US}"):
            self.limits["cpu.max"] = f"{cpus * CPU_PERIOD_US} {CPU_PERIOD_US}"

    def join_script(self) -> str:
        """Shell lines that move the calling shell into every group (before it execs)."""
        return "".join(f'echo $$ > "{g}/cgroup.procs" 2>/dev/null\n' for g in self.groups)

    def pids(self) -> set[int]:
        """Every process in the machine's groups, sub-groups included."""
        found: set[int] = set()
        for g in self.groups:
            found |= pids_below(g)
        return found

    def remove(self) -> None:
        for g in self.groups:
            remove_tree(g)
            with contextlib.suppress(OSError):
                os.rmdir(g.parent)  # the instance's group, once its last machine is gone
        self.groups = []


def pids_below(group: Path) -> set[int]:
    found: set[int] = set()
    if not group.is_dir():
        return found
    for dirpath, _dirs, _files in os.walk(group):
        for line in _read(Path(dirpath) / "cgroup.procs").split():
            if line.isdigit():
                found.add(int(line))
    return found


def remove_tree(group: Path) -> None:
    """rmdir a group and its sub-groups, deepest first (a group's files go with it)."""
    if not group.is_dir():
        return
    for dirpath, _dirs, _files in os.walk(group, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)


def instance_groups(instance: str) -> list[Path]:
    """Groups named `instance` anywhere near the top of every hierarchy (for cleanup after a
    crash, when the emulator that made them, and so its own group, may be gone)."""
    found: list[Path] = []
    for h in hierarchies():
        for dirpath, dirs, _files in os.walk(h.mount):
            depth = len(Path(dirpath).relative_to(h.mount).parts)
            if instance in dirs:
                found.append(Path(dirpath) / instance)
            if depth >= 3:
                dirs.clear()
            dirs[:] = [d for d in dirs if d != instance]
    return found
