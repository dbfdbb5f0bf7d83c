"""The machines' system images: Debian root file systems built with debootstrap and cached.

Why: every emulated server boots a real Debian with systemd, sshd and cloud-init, like a Hetzner
image. There is one recipe per Hetzner image name and architecture (`debian-12` and `debian-13`,
each for amd64 and arm64), as bare as Hetzner's own image as far as it is known (see
docs/emulator.md "Machine images"): python3 for cloud-init, but no python3-venv or pip, apt
timers and unattended-upgrades enabled, curl present. Building one takes a minute or two, so it
is built once per recipe and reused by every emulator run (and every process: a lock keeps two
from building at once). The directory name carries a hash of the recipe, so changing the recipe
builds a new image instead of reusing a stale one. The build goes to a temporary directory that
is renamed into place at the end, so a crash never leaves a half-built image that looks
finished. Images carry no apt sources: the machine backend writes them per server (the lab's
apt cache), as Hetzner's images point at mirror.hetzner.com.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scherbelberg.emulator.build_cache import KEY, build_once, recipe_hash
from scherbelberg.emulator.machines import binfmt, guest_network
from scherbelberg.errors import EmulatorError, EmulatorInputError

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

DEFAULT_IMAGE_DIR = Path("/var/cache/scherbelberg/images")
FALLBACK_MIRROR = "http://deb.debian.org/debian"

# The Hetzner API's architectures and Debian's names for them.
DEBIAN_ARCH = {"x86": "amd64", "arm": "arm64"}

# What every recipe installs (debootstrap's minbase plus these). Sources for each choice:
# docs/emulator.md "Machine images". Left out on purpose: python3-venv and python3-pip
# (Hetzner's debian-12 has no venv: pypa/packaging.python.org#399).
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "openssh-server",
    "cloud-init",
    "python3",
    "python3-cffi-backend",  # without it cloud-init's python3-cryptography stays unconfigured
    "iproute2",
    "nftables",
    "dbus",
    "sudo",
    "procps",
    "ca-certificates",
    "curl",
    "unattended-upgrades",
    "netcat-openbsd",
    "iputils-ping",
    "less",
    "netbase",
    *guest_network.PACKAGES,
)


@dataclass(frozen=True)
class Recipe:
    """One system image: the Hetzner image name, Debian suite and Debian architecture."""

    name: str  # as Hetzner names it: "debian-12"
    suite: str  # "bookworm"
    arch: str  # Debian's: "amd64" or "arm64"
    python: str  # the system Python's major.minor, for docs and tests

    def key(self) -> str:
        """A short hash of everything that goes into the image (the cache directory's suffix)."""
        parts = (str(RECIPE_VERSION), self.name, self.suite, self.arch, ",".join(PACKAGES),
                 CLOUD_CFG, AUTO_UPGRADES, *MASKED_UNITS, guest_network.RECIPE)  # fmt: skip
        # arm64 images are booted under qemu-user: binfmt.adapt_rootfs
        emulated = (binfmt.ROOTFS_RECIPE,) if self.arch == "arm64" else ()
        return recipe_hash(*parts, *emulated)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.arch})"


SUITES = {"debian-12": ("bookworm", "3.11"), "debian-13": ("trixie", "3.13")}
RECIPES: dict[tuple[str, str], Recipe] = {
    (name, arch): Recipe(name, suite, arch, python)
    for name, (suite, python) in SUITES.items()
    for arch in DEBIAN_ARCH.values()
}
# What `--build-image` (ci/setup) builds ahead of time: every image the test suite boots. The
# others (debian-13 arm64) are built on first use.
PREBUILT = (("debian-12", "amd64"), ("debian-13", "amd64"), ("debian-12", "arm64"))
# What a system image without a recipe of its own boots (ubuntu, rocky, alma): see
# docs/emulator.md "Machine images".
FALLBACK_IMAGE = "debian-12"


def recipe(name: str, arch: str = "amd64") -> Recipe:
    """The recipe for a Hetzner image name and an architecture (Debian's or Hetzner's name);
    names without a recipe of their own get `FALLBACK_IMAGE`'s."""
    arch = DEBIAN_ARCH.get(arch, arch)
    if arch not in DEBIAN_ARCH.values():
        raise EmulatorInputError(f"no machine images for architecture {arch!r}")
    return RECIPES.get((name, arch)) or RECIPES[(FALLBACK_IMAGE, arch)]


def host_arch() -> str:
    """Debian's name for this machine's architecture."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


# Make cloud-init behave like on a Hetzner image: keys go to root, the host name comes from
# the server name, no passwords. The network is configured from outside (the emulator's lab),
# so cloud-init must not touch it. apt sources are written per server by the machine backend
# (the lab's apt cache), so cloud-init must not replace them with its default mirror.
CLOUD_CFG = """\
# scherbelberg emulator: behave like a Hetzner Cloud image
datasource_list: [NoCloud, None]
disable_root: false
users: []
manage_etc_hosts: true
preserve_hostname: false
ssh_pwauth: false
apt:
  preserve_sources_list: true
network:
  config: disabled
"""

# Daily package lists and unattended upgrades, as on Debian's cloud images and Hetzner's (whose
# apt timers are enabled: they may hold the dpkg lock at first boot).
AUTO_UPGRADES = """\
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
"""

# Services that make no sense in a container: e2scrub checks LVM volumes, there are none.
MASKED_UNITS = (
    "e2scrub_all.timer",
    "e2scrub_reap.service",
)

# Bump when the steps below change in a way the hash of the texts above does not catch.
RECIPE_VERSION = 2


def image_dir() -> Path:
    """Where images are cached: `SCHERBELBERG_IMAGE_DIR` or /var/cache/scherbelberg/images."""
    env = os.environ.get("SCHERBELBERG_IMAGE_DIR")
    return Path(env) if env else DEFAULT_IMAGE_DIR


def image_path(r: Recipe, directory: Path | None = None) -> Path:
    """The root file system of a recipe (it may not exist yet)."""
    return (directory or image_dir()) / f"{r.name}-{r.arch}-{r.key()}" / "rootfs"


# The names image_path gives cache directories (any recipe's, current or not), as a regex.
IMAGE_DIR_NAME = rf"[a-z0-9.-]+-(?:{'|'.join(DEBIAN_ARCH.values())})-{KEY}"


def image_ready(r: Recipe, directory: Path | None = None) -> bool:
    """True when the image exists, so a caller knows whether to announce a first-time build."""
    return (image_path(r, directory).parent / "complete").exists()


# The default image (debian-12 on amd64), for callers that need just one.
DEFAULT_RECIPE = RECIPES[("debian-12", "amd64")]


def recipe_key() -> str:
    """The default image's recipe hash."""
    return DEFAULT_RECIPE.key()


def base_image_path(directory: Path | None = None) -> Path:
    """The default image's root file system (it may not exist yet)."""
    return image_path(DEFAULT_RECIPE, directory)


def base_image_ready(directory: Path | None = None) -> bool:
    """True when the default image exists."""
    return image_ready(DEFAULT_RECIPE, directory)


def _host_sources() -> list[tuple[str, list[str]]]:
    """(URI, suites) of every `deb` source of this host, deb822 files first."""
    sources_d = Path("/etc/apt/sources.list.d")
    found: list[tuple[str, list[str]]] = []
    if sources_d.is_dir():
        for f in sorted(sources_d.glob("*.sources")):
            for stanza in re.split(r"\n\s*\n", _read(f)):
                fields = parse_deb822(stanza)
                if "deb" not in fields.get("types", "").split():
                    continue
                suites = fields.get("suites", "").split()
                found.extend((uri, suites) for uri in fields.get("uris", "").split())
    for f in [Path("/etc/apt/sources.list"), *sorted(sources_d.glob("*.list"))]:
        for line in _read(f).splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m:
                found.append((m.group(1), [m.group(2)]))
    return [(uri, suites) for uri, suites in found if uri.startswith(("http://", "https://"))]


def _is_security(uri: str, suites: list[str]) -> bool:
    return "security" in uri or any("security" in s for s in suites)


def host_mirror() -> str:
    """The Debian mirror this host uses (the only one it may reach), else deb.debian.org."""
    for uri, suites in _host_sources():
        if not _is_security(uri, suites):
            return uri.rstrip("/")
    return FALLBACK_MIRROR


def host_security_mirror() -> str | None:
    """The Debian security mirror this host uses, or None when it lists none (then machines
    get no security updates: they could not reach any other)."""
    for uri, suites in _host_sources():
        if _is_security(uri, suites):
            return uri.rstrip("/")
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def parse_deb822(stanza: str) -> dict[str, str]:
    """The fields of one deb822 stanza (an apt .sources entry), keys lower case."""
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0].isspace() and key:
            fields[key] += " " + line.strip()
            continue
        k, _, v = line.partition(":")
        key = k.strip().lower()
        fields[key] = v.strip()
    return fields


def ensure_image(
    name: str,
    arch: str = "amd64",
    progress: Progress | None = None,
    directory: Path | None = None,
    mirror: str | None = None,
) -> Path:
    """Return the root file system of image `name` for `arch`, building it first if needed
    (blocking; names without a recipe get `FALLBACK_IMAGE`'s).

    `progress` receives short human-readable lines (the first is "building machine image
    debian-12 (amd64) (first time, ~1 min)" when a build starts). Safe to call from several
    processes at once.
    """
    r = recipe(name, arch)
    rootfs = image_path(r, directory)
    top = rootfs.parent
    if image_ready(r, directory):
        return rootfs
    say = progress or (lambda msg: logger.info("%s", msg))

    def build(out: Path) -> Path:
        minutes = "~1-2 min" if r.arch == host_arch() else "several minutes, emulated"
        say(f"building machine image {r.label} (first time, {minutes})")
        started = time.monotonic()
        _build(r, out / "rootfs", mirror or host_mirror(), say)
        (out / "complete").write_text(f"{r.key()}\n")
        say(f"machine image {r.label} ready ({time.monotonic() - started:.0f} s)")
        return rootfs

    return build_once(top, lambda: rootfs if image_ready(r, directory) else None, build)


async def ensure_image_async(
    name: str,
    arch: str = "amd64",
    progress: Progress | None = None,
    directory: Path | None = None,
    mirror: str | None = None,
) -> Path:
    """`ensure_image` in a worker thread (progress is called from that thread)."""
    return await asyncio.to_thread(ensure_image, name, arch, progress, directory, mirror)


def ensure_base_image(
    progress: Progress | None = None, directory: Path | None = None, mirror: str | None = None
) -> Path:
    """The default image (debian-12, amd64), built first if needed."""
    return ensure_image(DEFAULT_RECIPE.name, DEFAULT_RECIPE.arch, progress, directory, mirror)


def _build(r: Recipe, rootfs: Path, mirror: str, say: Progress) -> None:
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    if r.arch == "arm64":
        # debootstrap runs its second stage (the packages' scripts) in a chroot: with
        # qemu-aarch64 registered it runs emulated, no --foreign step needed (~8 CPU-minutes)
        binfmt.ensure_aarch64()
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--arch={r.arch}",
        f"--include={','.join(PACKAGES)}",
        r.suite,
        str(rootfs),
        mirror,
    ]
    logger.info("running %s", " ".join(cmd))
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        tail = [*tail[-30:], line]
        # Only the stages ("I: Installing core packages..."), not every single package.
        if line.startswith("I: ") and line.endswith(("...", "successfully.")):
            say(f"  {line[3:]}")
    if proc.wait() != 0:
        raise EmulatorError(f"debootstrap failed ({proc.returncode}):\n" + "\n".join(tail))
    say("  configuring image")
    _configure(rootfs)
    if r.arch == "arm64":
        binfmt.adapt_rootfs(rootfs)


def _configure(rootfs: Path) -> None:
    etc = rootfs / "etc"
    (etc / "default" / "locale").write_text("LANG=C.UTF-8\n")
    (etc / "cloud" / "cloud.cfg.d" / "90-scherbelberg.cfg").write_text(CLOUD_CFG)
    (etc / "apt" / "apt.conf.d" / "20auto-upgrades").write_text(AUTO_UPGRADES)
    # No apt sources in the image: each server gets the lab's (see apt_cache.py).
    (etc / "apt" / "sources.list").unlink(missing_ok=True)
    guest_network.install_into(rootfs)
    # Per instance: systemd makes a machine id on first boot, cloud-init makes host keys.
    (etc / "machine-id").write_text("")
    dbus_id = rootfs / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.is_symlink() or dbus_id.exists():
        dbus_id.unlink()
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()
    hostname = etc / "hostname"
    if hostname.exists():
        hostname.unlink()
    for unit in MASKED_UNITS:
        link = etc / "systemd" / "system" / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    subprocess.run(["chroot", str(rootfs), "apt-get", "clean"], check=True, capture_output=True)
    lists = rootfs / "var" / "lib" / "apt" / "lists"
    for f in lists.glob("*"):
        if f.is_file() and f.name != "lock":
            f.unlink()
    shutil.rmtree(rootfs / "var" / "lib" / "cloud", ignore_errors=True)
    for log in (rootfs / "var" / "log").rglob("*"):
        if log.is_file():
            log.write_bytes(b"")
