"""What the emulator's built artefacts (machine images, the interpreter archive, the conda
channel) share: a cache directory named by a hash of the recipe, and a build that runs once.

Why: the three are slow to build (minutes) and used by several processes at once. Each lives
under a directory named by its recipe's hash, so a changed recipe builds anew and an unchanged
one is reused; a lock file serialises builders; a build happens in a temporary sibling that is
renamed into place at the end, so a crash never leaves a half-built artefact that looks done.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

KEY = r"[0-9a-f]{12}"  # what recipe_hash returns, as a pattern for cache directory names


def recipe_hash(*parts: str) -> str:
    """A short hash of a recipe's parts (a cache directory's name). Changing how it is
    computed changes every cached artefact's name, so every one is built again."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def build_once(target: Path, ready: Callable[[], T | None], build: Callable[[Path], T]) -> T:
    """`ready()` if it finds `target` built, else `build(out)` under a lock and rename `out`
    (which `build` creates) to `target`. Safe to call from several processes at once."""
    done = ready()  # built already: no lock needed (a reader without root may not take it)
    if done is not None:
        return done
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = ready()  # another process may have built it while we waited
        if done is not None:
            return done
        _remove_stale(target)
        work = target.parent / f".{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            result = build(work / "out")
            shutil.rmtree(target, ignore_errors=True)
            (work / "out").rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return result


def _remove_stale(target: Path) -> None:
    """Temporary build directories of processes that died while building."""
    for p in target.parent.glob(f".{target.name}.tmp-*"):
        if _builder_died(p):
            shutil.rmtree(p, ignore_errors=True)


def _builder_died(work: Path) -> bool:
    """True for a `.<name>.tmp-<pid>` build directory whose process no longer runs."""
    pid = work.name.rsplit("-", 1)[-1]
    return pid.isdigit() and not Path(f"/proc/{pid}").exists()


def remove_stale_artefacts(
    root: Path, kind: str, scheme: str, current: Collection[str], say: Callable[[str], None]
) -> None:
    """A changed recipe builds anew, so nothing else would free its predecessors' space."""
    if not root.is_dir():
        return
    names = {p.name for p in root.iterdir() if p.is_dir() and re.fullmatch(scheme, p.name)}
    names |= {p.name[1:-5] for p in root.glob(".*.lock") if re.fullmatch(scheme, p.name[1:-5])}
    for name in sorted(names - set(current)):
        entry, lock_path = root / name, root / f".{name}.lock"
        with open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being built (by a checkout whose recipe differs)
            size = _size(entry)
            if entry.exists():
                shutil.rmtree(entry)
            lock_path.unlink()
        say(f"removed stale {kind} {name} ({size / 1e6:.0f} MB)")
    for work in sorted(root.glob(".*.tmp-*")):
        if re.fullmatch(rf"\.(?:{scheme})\.tmp-\d+", work.name) and _builder_died(work):
            size = _size(work)
            shutil.rmtree(work, ignore_errors=True)
            say(f"removed {kind} build leftover {work.name} ({size / 1e6:.0f} MB)")


def _size(path: Path) -> int:
    """Bytes in the files below `path` (symbolic links not followed)."""
    return sum(
        os.lstat(os.path.join(top, f)).st_size for top, _, files in os.walk(path) for f in files
    )
