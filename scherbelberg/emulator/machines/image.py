"""The machines' base image: a Debian root file system built once with debootstrap and cached.

Why: every emulated server boots a real Debian with systemd, sshd and cloud-init, like a Hetzner
image. Building it takes about a minute, so it is built once per recipe and reused by every
emulator run (and every process: a lock keeps two from building at once). The directory name
carries a hash of the recipe, so changing the recipe builds a new image instead of reusing a
stale one. The build goes to a temporary directory that is renamed into place at the end, so a
crash never leaves a half-built image that looks finished.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

DEFAULT_IMAGE_DIR = Path("/var/cache/scherbelberg/images")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"

PACKAGES = (
    "systemd",
    "systemd-sysv",
    "openssh-server",
    "cloud-init",
    "python3",
    "python3-cffi-backend",  # without it cloud-init's python3-cryptography stays unconfigured
    "python3-venv",
    "python3-pip",
    "iproute2",
    "nftables",
    "dbus",
    "sudo",
    "procps",
    "ca-certificates",
    "curl",
    "netcat-openbsd",
    "iputils-ping",
    "less",
    "netbase",
)

# Make cloud-init behave like on a Hetzner image: keys go to root, the host name comes from
# the server name, no passwords. The network is configured from outside (the emulator's lab),
# so cloud-init must not touch it.
CLOUD_CFG = """\
# scherbelberg emulator: behave like a Hetzner Cloud image
datasource_list: [NoCloud, None]
disable_root: false
users: []
manage_etc_hosts: true
preserve_hostname: false
ssh_pwauth: false
network:
  config: disabled
"""

# Services that make no sense in a machine without outbound network access.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
)

# Bump when the steps below change in a way the hash of the texts above does not catch.
RECIPE_VERSION = 1


def recipe_key() -> str:
    """A short hash of everything that goes into the image (the cache directory's suffix)."""
    h = hashlib.sha256()
    for part in (str(RECIPE_VERSION), SUITE, ",".join(PACKAGES), CLOUD_CFG, *MASKED_UNITS):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def image_dir() -> Path:
    """Where images are cached: `SCHERBELBERG_IMAGE_DIR` or /var/cache/scherbelberg/images."""
    env = os.environ.get("SCHERBELBERG_IMAGE_DIR")
    return Path(env) if env else DEFAULT_IMAGE_DIR


def base_image_path(directory: Path | None = None) -> Path:
    """The root file system of the current recipe (it may not exist yet)."""
    return (directory or image_dir()) / f"debian-{SUITE}-{recipe_key()}" / "rootfs"


def base_image_ready(directory: Path | None = None) -> bool:
    """True when the image exists, so a CLI knows whether to announce a first-time build."""
    return (base_image_path(directory).parent / "complete").exists()


def host_mirror() -> str:
    """The Debian mirror this host uses (the only one it may reach), else deb.debian.org."""
    sources_d = Path("/etc/apt/sources.list.d")
    candidates: list[str] = []
    if sources_d.is_dir():
        for f in sorted(sources_d.glob("*.sources")):
            for stanza in re.split(r"\n\s*\n", _read(f)):
                fields = _deb822(stanza)
                if "deb" not in fields.get("types", "").split():
                    continue
                suites = fields.get("suites", "").split()
                uris = fields.get("uris", "").split()
                if any("security" in s for s in suites):
                    continue
                candidates.extend(uris)
    for f in [Path("/etc/apt/sources.list"), *sorted(sources_d.glob("*.list"))]:
        for line in _read(f).splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and "security" not in m.group(2):
                candidates.append(m.group(1))
    for uri in candidates:
        if uri.startswith(("http://", "https://")) and "security" not in uri:
            return uri.rstrip("/")
    return FALLBACK_MIRROR


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _deb822(stanza: str) -> dict[str, str]:
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


def ensure_base_image(
    progress: Progress | None = None, directory: Path | None = None, mirror: str | None = None
) -> Path:
    """Return the base image's root file system, building it first if needed (blocking).

    `progress` receives short human-readable lines (the first is "building machine image
    (first time, ~1 min)" when a build starts). Safe to call from several processes at once.
    """
    rootfs = base_image_path(directory)
    top = rootfs.parent
    if base_image_ready(directory):
        return rootfs
    say = progress or (lambda msg: logger.info("%s", msg))
    top.parent.mkdir(parents=True, exist_ok=True)
    lock_path = top.parent / f".{top.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if base_image_ready(directory):  # another process built it while we waited
            return rootfs
        say("building machine image (first time, ~1 min)")
        started = time.monotonic()
        tmp = top.parent / f".{top.name}.tmp-{os.getpid()}"
        _remove_stale(top.parent, top.name)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(top, ignore_errors=True)
        try:
            _build(tmp / "rootfs", mirror or host_mirror(), say)
            (tmp / "complete").write_text(f"{recipe_key()}\n")
            os.rename(tmp, top)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        say(f"machine image ready ({time.monotonic() - started:.0f} s)")
    return rootfs


async def ensure_base_image_async(
    progress: Progress | None = None, directory: Path | None = None, mirror: str | None = None
) -> Path:
    """`ensure_base_image` in a worker thread (progress is called from that thread)."""
    return await asyncio.to_thread(ensure_base_image, progress, directory, mirror)


def _remove_stale(parent: Path, name: str) -> None:
    """Temporary build directories of processes that died while building."""
    for p in parent.glob(f".{name}.tmp-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(p, ignore_errors=True)


def _build(rootfs: Path, mirror: str, say: Progress) -> None:
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
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
        raise RuntimeError(f"debootstrap failed ({proc.returncode}):\n" + "\n".join(tail))
    say("  configuring image")
    _configure(rootfs)


def _configure(rootfs: Path) -> None:
    etc = rootfs / "etc"
    (etc / "default" / "locale").write_text("LANG=C.UTF-8\n")
    (etc / "cloud" / "cloud.cfg.d" / "90-scherbelberg.cfg").write_text(CLOUD_CFG)
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
