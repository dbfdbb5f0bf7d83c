"""Run arm64 programs on an x86 host: qemu-aarch64 registered with the kernel's binfmt_misc.

Why: `cax` servers are arm64 (Ampere Altra) on Hetzner. The local Hetzner boots them as
systemd-nspawn machines from an arm64 Debian root file system; the host kernel hands every
aarch64 ELF it is asked to run to Debian's `qemu-aarch64-static` (package qemu-user-static).

The registration must carry the F (fix-binary) flag: the kernel then opens the interpreter once,
at registration, so it works inside a machine whose root has no qemu. Debian's package ships
the registration as a systemd-binfmt line (/usr/lib/binfmt.d/qemu-aarch64.conf, flags "OPF")
and as an update-binfmts format file (fix_binary yes). Its postinst registers it only where
systemd-binfmt or binfmt-support run at boot; PID 1 here is often not systemd, so this module
mounts binfmt_misc and writes Debian's own line into the kernel's register file itself.

systemd under qemu-user needs two more things (see the end of this module): units that load
credentials fail, and systemd's real-time signals arrive shifted by two.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
from pathlib import Path

from scherbelberg.errors import EmulatorError

logger = logging.getLogger(__name__)

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
ENTRY = "qemu-aarch64"
# qemu-user-static's line in the format the kernel's `register` file takes (`:name:type:...`).
DEBIAN_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
INSTALL_HINT = "apt-get install qemu-user-static"


class BinfmtError(EmulatorError, RuntimeError):
    """arm64 programs cannot run on this host; the message says why and what to do."""


def native_arm64() -> bool:
    """True on an arm64 host, which runs the arm image without emulation."""
    return platform.machine() in ("aarch64", "arm64")


def aarch64_flags(binfmt_dir: Path = BINFMT_DIR) -> str | None:
    """The flags of the enabled qemu-aarch64 registration ("PF", "OCF"…), or None if absent."""
    try:
        lines = (binfmt_dir / ENTRY).read_text().splitlines()
    except OSError:
        return None
    if not lines or lines[0].strip() != "enabled":
        return None
    for line in lines:
        if line.startswith("flags:"):
            return line.partition(":")[2].strip()
    return ""


def ensure_aarch64(binfmt_dir: Path = BINFMT_DIR, conf: Path = DEBIAN_CONF) -> None:
    """Make sure aarch64 programs run here, also inside machines; raise `BinfmtError` if not.

    Idempotent and cheap once registered. Needs root the first time (mount, register).
    """
    if native_arm64():
        return
    flags = aarch64_flags(binfmt_dir)
    if flags is not None and "F" in flags:
        return
    _mount(binfmt_dir)
    flags = aarch64_flags(binfmt_dir)
    if flags is not None and "F" in flags:
        return
    try:
        line = next(
            ln.strip() for ln in conf.read_text().splitlines() if ln.startswith(f":{ENTRY}:")
        )
    except (OSError, StopIteration):
        raise BinfmtError(
            f"arm servers need qemu-aarch64: {conf} is missing ({INSTALL_HINT})"
        ) from None
    interpreter = line.split(":")[6]
    if not os.path.exists(interpreter):
        raise BinfmtError(f"arm servers need {interpreter} ({INSTALL_HINT})")
    if "F" not in line.rsplit(":", 1)[1]:
        line += "F"  # a registration without F fails inside machines (no qemu in their root)
    try:
        if flags is not None or (binfmt_dir / ENTRY).exists():
            # registered without F (or disabled) by someone else: replace it with Debian's
            logger.info(
                "replacing the %s binfmt registration (flags %r) with one with F", ENTRY, flags
            )
            (binfmt_dir / ENTRY).write_text("-1")
        (binfmt_dir / "register").write_text(line)
    except OSError as exc:
        flags = aarch64_flags(binfmt_dir)
        if flags is not None and "F" in flags:  # another process registered it meanwhile
            return
        raise BinfmtError(f"cannot register {ENTRY} with binfmt_misc: {exc} (needs root)") from exc
    flags = aarch64_flags(binfmt_dir)
    if flags is None or "F" not in flags:
        raise BinfmtError(f"{ENTRY} binfmt registration did not take (flags {flags!r})")
    logger.info("registered %s with binfmt_misc (flags %s)", ENTRY, flags)


def _mount(binfmt_dir: Path) -> None:
    if (binfmt_dir / "register").exists():
        return
    proc = subprocess.run(
        ["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt_dir)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not (binfmt_dir / "register").exists():
        raise BinfmtError(
            f"cannot mount binfmt_misc on {binfmt_dir}: {proc.stderr.strip() or 'no register file'}"
            " (arm servers need it; run as root on a kernel with binfmt_misc)"
        )


# -- systemd under qemu-user ----------------------------------------------------------------------

# Units with credentials fail under qemu-user with "Failed to set up credentials: Invalid
# argument" (status 243/CREDENTIALS): systemd sets them up in a child made by clone() with
# CLONE_NEWNS, which qemu-user refuses with EINVAL (systemd/systemd#21511). Among them are
# systemd-tmpfiles-setup and systemd-sysusers, so the guest would boot "degraded". Nothing hands
# credentials to these machines, so each such unit gets a drop-in that empties its lists.
CREDENTIAL_KEYS = (
    "LoadCredential",
    "LoadCredentialEncrypted",
    "SetCredential",
    "SetCredentialEncrypted",
    "ImportCredential",
)
DROPIN_NAME = "scherbelberg-qemu-user.conf"
# Part of the arm images' recipe (image.py hashes it): changing the adaptation rebuilds them.
ROOTFS_RECIPE = f"drop-in {DROPIN_NAME} resets {','.join(CREDENTIAL_KEYS)}"


def adapt_rootfs(rootfs: Path) -> list[str]:
    """Make an arm64 root file system boot cleanly under qemu-user; return the units changed."""
    changed: list[str] = []
    for unit_dir in (rootfs / "usr/lib/systemd/system", rootfs / "lib/systemd/system"):
        if not unit_dir.is_dir():
            continue  # with merged /usr both are one directory: each unit is seen once by name
        for unit in sorted(unit_dir.glob("*.service")):
            keys = sorted(
                {
                    line.partition("=")[0].strip()
                    for line in unit.read_text(errors="replace").splitlines()
                    if line.partition("=")[0].strip() in CREDENTIAL_KEYS
                }
            )
            if not keys or unit.name in changed:
                continue
            dropin = rootfs / "etc/systemd/system" / f"{unit.name}.d" / DROPIN_NAME
            dropin.parent.mkdir(parents=True, exist_ok=True)
            dropin.write_text(
                "# scherbelberg: no credentials under qemu-user (clone with CLONE_NEWNS fails)\n"
                "[Service]\n" + "".join(f"{k}=\n" for k in keys)
            )
            changed.append(unit.name)
    return changed


def nspawn_kill_signal() -> str | None:
    """The signal nspawn must send to an emulated guest's systemd to halt it, or None (native).

    nspawn halts a booted container with SIGRTMIN+3. qemu-user maps host real-time signal
    SIGRTMIN+n to the guest's __SIGRTMIN+n (qemu linux-user/signal.c, signal_table_init), and
    glibc's SIGRTMIN is __SIGRTMIN+2 on both sides, so the guest sees SIGRTMIN+1: systemd goes to
    rescue.target instead of halting (measured: the guest then sits at the rescue prompt until
    the plug is pulled). Host SIGRTMIN+5 arrives as the guest's SIGRTMIN+3, a halt.
    """
    return None if native_arm64() else "SIGRTMIN+5"


# Debian suites whose systemd starts no unit under qemu-user 7.x ("Failed to spawn executor:
# Invalid argument" for every unit, sshd and cloud-init among them; measured with debian-13's
# systemd 257 under Debian 12's qemu 7.2: docs/emulator.md, systemd/systemd#28901, #31219).
NO_BOOT_UNDER_QEMU_7 = frozenset({"trixie"})


def qemu_major_version() -> int | None:
    """The major version of the host's qemu-aarch64-static, None if it cannot be asked."""
    try:
        out = subprocess.run(
            ["qemu-aarch64-static", "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.split()
    if len(words) >= 3 and words[1] == "version" and words[2].split(".")[0].isdigit():
        return int(words[2].split(".")[0])
    return None


def refuse_unbootable(suite: str, image_name: str) -> None:
    """Refuse, in one line, an arm64 image this host's qemu-user cannot boot: otherwise the
    server would sit at `running` without SSH until the client's deadline."""
    if native_arm64() or suite not in NO_BOOT_UNDER_QEMU_7:
        return
    version = qemu_major_version()
    if version is not None and version <= 7:
        raise BinfmtError(
            f"{image_name} does not boot on arm servers here: its systemd starts no unit under "
            f"this host's qemu-user {version} (docs/emulator.md); use debian-12 for cax servers"
        )
