"""The shared build-once cache of images, the interpreter archive and the conda channel."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from scherbelberg.emulator.build_cache import build_once, recipe_hash


def test_recipe_hash_is_stable_and_sees_every_part() -> None:
    # the cache directories on disk are named by this: a changed value rebuilds everything
    assert recipe_hash("1", "bookworm") == "c13f86713be6"
    assert recipe_hash("1", "bookworm") != recipe_hash("1", "trixie")
    assert recipe_hash("a", "b") != recipe_hash("ab")  # parts are separated


def test_build_once_builds_then_reuses(tmp_path: Path) -> None:
    target = tmp_path / "abc"
    calls: list[Path] = []

    def ready() -> Path | None:
        return target if (target / "done").is_file() else None

    def build(out: Path) -> Path:
        calls.append(out)
        out.mkdir()
        (out / "done").write_text("")
        return target

    assert build_once(target, ready, build) == target
    assert build_once(target, ready, build) == target
    assert len(calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".abc.lock", "abc"]


def test_a_failed_build_leaves_nothing_that_looks_built(tmp_path: Path) -> None:
    target = tmp_path / "abc"
    stale = tmp_path / ".abc.tmp-999999999"  # a builder that died (no such process)
    stale.mkdir()

    def build(out: Path) -> Path:
        out.mkdir()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        build_once(target, lambda: None, build)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".abc.lock"]


def test_build_image_removes_stale_artefacts_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # what `--build-image` removes after the build: older recipes' artefacts with their locks,
    # dead builders' temporary directories; never a current key, a live build, a held lock or
    # a name outside the scheme
    from scherbelberg.emulator import conda_channel, interpreters
    from scherbelberg.emulator.command_line import _remove_stale_artefacts
    from scherbelberg.emulator.machines.image import RECIPES, image_path

    images, archives, conda = tmp_path / "images", tmp_path / "interpreters", tmp_path / "conda"
    current = [image_path(r, images).parent for r in RECIPES.values()]
    current += [archives / interpreters.recipe_key(), conda / conda_channel.recipe_key()]
    stale = [images / "debian-12-amd64-0123456789ab", archives / "0123456789ab"]
    held = images / "debian-13-amd64-abababababab"  # being built by another checkout
    for entry in [*current, *stale, held]:
        entry.mkdir(parents=True)
        (entry.parent / f".{entry.name}.lock").touch()
    (stale[0] / "rootfs").mkdir()
    (stale[0] / "rootfs" / "big").write_bytes(b"x" * 2_600_000)
    (conda / ".1f9c4fc549f4.lock").touch()  # an old recipe's lock without its directory
    dead = images / ".debian-13-amd64-9e96bc54d1ef.tmp-999999999"  # no such process
    alive = images / f".debian-12-amd64-0123456789ab.tmp-{os.getpid()}"
    for work in (dead, alive):
        (work / "out").mkdir(parents=True)
    foreign = [
        images / "debian-bookworm-fe7c0e7e6499",  # an earlier naming scheme
        images / "notes.txt",
        images / ".debian-12-amd64-0123456789ab.tmp-x",
        archives / "wheels",
        conda / "0123456789abc",  # 13 hex digits
    ]
    for path in foreign:
        if path.suffix == ".txt":
            path.write_text("mine")
        else:
            path.mkdir()
    before = {p for p in tmp_path.rglob("*")}

    with open(images / f".{held.name}.lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _remove_stale_artefacts(images, archives, conda)

    assert capsys.readouterr().out.splitlines() == [
        "removed stale image debian-12-amd64-0123456789ab (3 MB)",
        "removed image build leftover .debian-13-amd64-9e96bc54d1ef.tmp-999999999 (0 MB)",
        "removed stale interpreter archive 0123456789ab (0 MB)",
        "removed stale conda channel 1f9c4fc549f4 (0 MB)",
    ]
    gone = {
        *(p for p in before if stale[0] in p.parents),
        stale[0], images / f".{stale[0].name}.lock",
        stale[1], archives / f".{stale[1].name}.lock",
        conda / ".1f9c4fc549f4.lock",
        dead, dead / "out",
    }  # fmt: skip
    assert {p for p in tmp_path.rglob("*")} == before - gone
    assert all(p.exists() for p in [*current, held, alive, *foreign])
