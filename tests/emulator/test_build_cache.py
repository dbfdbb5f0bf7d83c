"""The shared build-once cache of images, the interpreter archive and the conda channel."""

from __future__ import annotations

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
