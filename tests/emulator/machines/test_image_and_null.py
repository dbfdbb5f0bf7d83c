"""Image recipe helpers (no build here: the machine tests build or reuse the cache) and the
machine-less backend."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from scherbelberg.emulator.machines import apt_cache, image
from scherbelberg.emulator.machines.base import MachineSpec
from scherbelberg.emulator.machines.null import NullBackend


def test_recipe_key_is_stable_and_names_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = image.recipe_key()
    assert len(key) == 12 and int(key, 16) >= 0
    monkeypatch.setattr(image, "PACKAGES", (*image.PACKAGES, "one-more-package"))
    assert image.recipe_key() != key  # what goes into the image changes its key
    monkeypatch.undo()
    assert image.recipe_key() == key
    monkeypatch.setenv("SCHERBELBERG_IMAGE_DIR", str(tmp_path))
    assert image.image_dir() == tmp_path
    path = image.base_image_path()
    assert path.name == "rootfs"
    assert image.recipe_key() in path.parent.name
    assert not image.base_image_ready()


def test_ready_image_is_returned_without_building(tmp_path: Path) -> None:
    rootfs = image.base_image_path(tmp_path)
    rootfs.mkdir(parents=True)
    (rootfs.parent / "complete").write_text("x\n")
    said: list[str] = []
    assert image.ensure_base_image(said.append, tmp_path) == rootfs
    assert said == []


def test_deb822_parsing() -> None:
    fields = image.parse_deb822(
        "Types: deb deb-src\nURIs: http://mirror.example/debian\n"
        "# comment\nSuites: bookworm\n bookworm-updates\nComponents: main"
    )
    assert fields["types"] == "deb deb-src"
    assert fields["uris"] == "http://mirror.example/debian"
    assert fields["suites"] == "bookworm bookworm-updates"


def test_host_mirror_is_a_url() -> None:
    assert image.host_mirror().startswith(("http://", "https://"))


async def test_null_backend() -> None:
    exits: list[tuple[int, int]] = []
    b = NullBackend()
    b.set_exit_callback(lambda sid, code: exits.append((sid, code)))
    await b.start()
    assert b.client_address in b.reserved_public
    assert b.client_address in b.public_range
    assert b.echo_url is None and b.outside_netns is None
    await b.create(MachineSpec(1, "a", 1, ipaddress.IPv4Address("198.18.0.10"), None))
    assert not b.is_running(1)
    await b.power_on(1)
    assert b.is_running(1)
    await b.kill(1)
    assert not b.is_running(1) and exits == [(1, -9)]
    await b.destroy(1)
    await b.stop()


def test_recipes_per_name_and_architecture(tmp_path: Path) -> None:
    r12, r13 = image.recipe("debian-12", "x86"), image.recipe("debian-13", "amd64")
    assert (r12.suite, r12.arch, r12.python) == ("bookworm", "amd64", "3.11")
    assert (r13.suite, r13.python) == ("trixie", "3.13")
    arm = image.recipe("debian-12", "arm")
    assert arm.arch == "arm64" and arm.key() != r12.key()
    # one cache directory per recipe, named by image, architecture and recipe hash
    paths = {image.image_path(r, tmp_path).parent.name for r in image.RECIPES.values()}
    assert len(paths) == 4 and f"debian-13-amd64-{r13.key()}" in paths
    # images without a recipe of their own boot debian-12 of their architecture
    assert image.recipe("ubuntu-24.04", "arm") == arm
    with pytest.raises(ValueError):
        image.recipe("debian-12", "riscv64")
    # bare as Hetzner's: no venv or pip in any image; unattended upgrades in all
    assert not {"python3-venv", "python3-pip"} & set(image.PACKAGES)
    assert "unattended-upgrades" in image.PACKAGES
    # what --build-image builds ahead of time are real recipes, not fallbacks
    assert all(key in image.RECIPES for key in image.PREBUILT)


def test_apt_cache_config_and_guest_sources(tmp_path: Path) -> None:
    conf = apt_cache.config(3, tmp_path, tmp_path / "c", "http://m.example/debian", None)
    assert "BindAddress: 127.42.3.1:13142" in conf
    assert "Remap-debrep: /debian ; http://m.example/debian" in conf
    assert "secdeb" not in conf  # the host has no security mirror: machines get none either
    sources = apt_cache.sources_for("http://198.18.3.253:3142", "trixie", security=True)
    assert "URIs: http://198.18.3.253:3142/debian\nSuites: trixie trixie-updates" in sources
    assert "Suites: trixie-security" in sources
