"""arm64 under qemu-user: what is checked without booting (the machine test that boots an arm
server is tests/emulator/test_arm_machines.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scherbelberg.emulator.machines import binfmt


def test_without_qemu_the_error_says_what_to_install(tmp_path: Path) -> None:
    # a binfmt_misc that is "mounted" (register exists) but has no qemu-aarch64 entry, and a
    # host without Debian's qemu-user-static registration file
    (tmp_path / "register").write_text("")
    if binfmt.native_arm64():
        pytest.skip("an arm64 host runs arm machines natively")  # never on this x86 CI
    with pytest.raises(binfmt.BinfmtError, match="apt-get install qemu-user-static"):
        binfmt.ensure_aarch64(tmp_path, tmp_path / "no-such.conf")


def test_units_with_credentials_get_a_drop_in_that_empties_them(tmp_path: Path) -> None:
    units = tmp_path / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    (units / "systemd-sysusers.service").write_text(
        "[Service]\nExecStart=systemd-sysusers\nLoadCredential=passwd.plaintext-password.root\n"
        "ImportCredential=sysusers.*\n"
    )
    (units / "ssh.service").write_text("[Service]\nExecStart=/usr/sbin/sshd -D\n")
    os.symlink("usr/lib", tmp_path / "lib")  # merged /usr: the same units seen twice

    assert binfmt.adapt_rootfs(tmp_path) == ["systemd-sysusers.service"]
    dropin = tmp_path / "etc/systemd/system/systemd-sysusers.service.d" / binfmt.DROPIN_NAME
    lines = dropin.read_text().splitlines()
    assert lines[1:] == ["[Service]", "ImportCredential=", "LoadCredential="]
    assert not (tmp_path / "etc/systemd/system/ssh.service.d").exists()


@pytest.mark.parametrize(
    ("suite", "qemu", "refused"),
    [("trixie", 7, True), ("trixie", 8, False), ("bookworm", 7, False), ("trixie", None, False)],
)
def test_an_image_qemu_cannot_boot_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, suite: str, qemu: int | None, refused: bool
) -> None:
    """debian-13 under qemu 7 never answers SSH (docs/emulator.md): refused at create, not
    found out at the client's deadline. A newer qemu, or one that cannot be asked, is tried."""
    monkeypatch.setattr(binfmt, "native_arm64", lambda: False)
    monkeypatch.setattr(binfmt, "qemu_major_version", lambda: qemu)
    if refused:
        with pytest.raises(binfmt.BinfmtError, match=r"^debian-13 does not boot on arm servers"):
            binfmt.refuse_unbootable(suite, "debian-13")
    else:
        binfmt.refuse_unbootable(suite, "debian-13")


@pytest.mark.machines
def test_this_hosts_qemu_version_is_read() -> None:
    """Debian 12's qemu-user-static (7.2) as CI installs it: `qemu-aarch64 version 7.2.x`."""
    assert binfmt.qemu_major_version() == 7


@pytest.mark.machines
def test_qemu_aarch64_is_registered_with_fix_binary() -> None:
    """Registered with F, machines run arm64 programs although their root has no qemu."""
    if os.geteuid() != 0 or not binfmt.DEBIAN_CONF.exists():
        pytest.skip("needs root and qemu-user-static (ci/setup installs it)")
    binfmt.ensure_aarch64()
    flags = binfmt.aarch64_flags()
    assert flags is not None and "F" in flags
