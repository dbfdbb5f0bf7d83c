"""Servers as systemd-nspawn machines: real systemd, cloud-init, sshd, one netns each.

Why: a server in the local Hetzner must be a real Linux host (cloud-init user data runs, SSH
works, a reboot reboots) yet start in about two seconds and cost about 30 MiB. A container
booted with systemd-nspawn gives that, sharing the host's kernel.

Per machine (state in `<state dir>/sbg<k>/servers/<id>/`):
- a disk: an overlay with the image's layers as `lowerdir` and `upper/` + `work/` of its own.
  The overlay is mounted in a private mount namespace made for each boot (`unshare --mount`),
  so no mount is ever left on the host, whatever happens to the emulator.
- a NoCloud seed in the upper layer (`/var/lib/cloud/seed/nocloud/`), so cloud-init takes the
  instance id, host name, SSH keys (for root, like on Hetzner) and the user data from it; and
  apt sources that name the lab's apt cache (`apt_cache.py`), like Hetzner's mirror.
- the image of its system image's name and architecture (`image.py` recipes: debian-12 and
  debian-13; other names boot debian-12), built on first use when not built yet.
- a network namespace from the `Lab` (public eth0, private enp7s0... configured by the guest's
  DHCP, see `guest_network.py`), passed to nspawn with `--network-namespace-path`.
- cgroups with the server type's memory and CPUs (best effort, see `cgroups.py`).
- a supervisor task that relaunches nspawn when the guest reboots (exit code 133) and calls the
  exit callback when the machine stops on its own.

Snapshots copy a server's upper layer into a new image layer, stacked on the server's lowers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from scherbelberg.emulator.machines import binfmt, cleanup, guest_network
from scherbelberg.emulator.machines.apt_cache import AptCache
from scherbelberg.emulator.machines.base import (
    FirewallPolicy,
    MachineBackend,
    MachineExitCallback,
    MachineSpec,
    PrivateAttachment,
)
from scherbelberg.emulator.machines.cgroups import MachineCgroups
from scherbelberg.emulator.machines.image import (
    DEFAULT_RECIPE,
    Progress,
    Recipe,
    base_image_ready,
    ensure_image_async,
    image_path,
    image_ready,
    recipe,
)
from scherbelberg.emulator.machines.lab import Lab
from scherbelberg.emulator.machines.util import run
from scherbelberg.emulator.model.static_catalog import find_system_image
from scherbelberg.errors import EmulatorError, EmulatorInputError

logger = logging.getLogger(__name__)

NSPAWN_RUN_DIR = Path("/run/systemd/nspawn")
EXIT_REBOOT = 133
TOOLS = ("systemd-nspawn", "ip", "nft", "nsenter", "unshare", "mount", "cp", "apt-cacher-ng",
         "dnsmasq", "ethtool")  # fmt: skip


def missing_requirements(image_dir: Path | None = None) -> list[str]:
    """What this host lacks to run machines (empty when it can), each as a short sentence."""
    missing: list[str] = []
    if not sys.platform.startswith("linux"):
        return ["machines need Linux"]
    if os.geteuid() != 0:
        missing.append("machines need root (network namespaces, mounts, systemd-nspawn)")
    tools = [*TOOLS] + ([] if base_image_ready(image_dir) else ["debootstrap", "chroot"])
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        missing.append(
            "missing commands: " + ", ".join(absent)
            + " (apt-get install systemd-container iproute2 nftables debootstrap apt-cacher-ng"
            + " dnsmasq-base ethtool)"
        )  # fmt: skip
    try:
        filesystems = Path("/proc/filesystems").read_text()
    except OSError:
        filesystems = ""
    modules = Path("/lib/modules") / os.uname().release
    if "overlay" not in filesystems and not any(modules.rglob("overlay.ko*")):
        missing.append("the kernel has no overlay file system (modprobe overlay)")
    return missing


@dataclass
class _Machine:
    spec: MachineSpec
    dir: Path
    lowers: list[Path]
    cgroups: MachineCgroups
    proc: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    requested_stop: bool = False  # the model asked: no relaunch, no exit callback
    boots: int = 0
    attachments: dict[int, PrivateAttachment] = field(default_factory=dict)

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def merged(self) -> Path:
        return self.dir / "root"


class NspawnBackend:
    """The `MachineBackend` that boots servers as systemd-nspawn machines.

    Arguments (all optional):
    - `state_dir`: where instance state lives (default `SCHERBELBERG_EMULATOR_DIR` or
      /var/lib/scherbelberg/emulator); this instance uses `<state_dir>/sbg<k>/`.
    - `image_dir`: image cache (default `SCHERBELBERG_IMAGE_DIR` or /var/cache/scherbelberg/images).
    - `lab_index`: force instance index k (default: the first free one).
    - `mirror`: Debian mirror for the image build (default: the host's).
    - `progress`: called with human-readable lines while an image builds (default: logged as
      warnings, so a first-use build shows on stderr).
    """

    name = "nspawn"

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        image_dir: Path | None = None,
        lab_index: int | None = None,
        mirror: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        self._state_base = state_dir or cleanup.state_dir()
        self._image_dir = image_dir
        self._mirror = mirror
        # a build (minutes) is worth a line on the emulator's stderr, even without --debug
        self._progress = progress or logger.warning
        self.lab = Lab(lab_index)
        self._machines: dict[int, _Machine] = {}
        self._removals: set[asyncio.Task[None]] = set()  # disks being deleted in the background
        # a system image's recipe, or a snapshot's layers (top first)
        self._images: dict[int, list[Path] | Recipe] = {}
        self.apt: AptCache | None = None
        self._callback: MachineExitCallback | None = None
        self._started = False

    # -- the lab ----------------------------------------------------------------------------
    @property
    def public_range(self) -> ipaddress.IPv4Network:
        return self.lab.public_range

    @property
    def reserved_public(self) -> frozenset[ipaddress.IPv4Address]:
        return self.lab.reserved_public

    @property
    def client_address(self) -> ipaddress.IPv4Address:
        return self.lab.client_address

    @property
    def echo_url(self) -> str | None:
        return self.lab.echo_url if self.lab.started else None

    @property
    def pip_index_url(self) -> str | None:
        return self.lab.pip_index_url if self.lab.started else None

    @property
    def python_downloads_json_url(self) -> str | None:
        return self.lab.python_downloads_json_url if self.lab.started else None

    def api_socket(self) -> socket.socket | None:
        return self.lab.api_socket() if self.lab.started else None

    @property
    def api_url(self) -> str | None:
        return self.lab.api_url if self.lab.started else None

    @property
    def outside_netns(self) -> str | None:
        return self.lab.outside_netns_path if self.lab.started else None

    @property
    def root(self) -> Path:
        """This instance's state directory."""
        return self._state_base / self.lab.prefix

    def set_exit_callback(self, callback: MachineExitCallback) -> None:
        self._callback = callback

    async def start(self) -> None:
        if self._started:
            return
        _raise_inotify_limits()
        await self.lab.start()
        self._started = True
        for d in (NSPAWN_RUN_DIR, self.root / "servers", self.root / "images"):
            await asyncio.to_thread(d.mkdir, parents=True, exist_ok=True)
        apt = AptCache(self.lab, self.root / "apt-cache")
        try:
            await apt.start()
        except BaseException:
            await apt.stop()
            await self.stop()
            raise
        self.apt = apt

    async def stop(self) -> None:
        for m in list(self._machines.values()):
            with contextlib.suppress(Exception):
                await self._hard_stop(m, requested=True)
        self._machines.clear()
        if self._removals:
            await asyncio.gather(*self._removals, return_exceptions=True)
        if self.apt is not None:
            await self.apt.stop()
            self.apt = None
        if self.lab.index >= 0:
            await cleanup.remove_instance(self.lab.index, self._state_base)
        await self.lab.stop()
        self._started = False

    # -- images -------------------------------------------------------------------------------
    async def prepare_images(self) -> None:
        """Build the default image (debian-12, amd64) now; others are built on first use."""
        await self.ensure_image(DEFAULT_RECIPE)

    async def ensure_image(self, r: Recipe) -> Path:
        """The recipe's root file system, built first (with a progress line) if needed."""
        return await ensure_image_async(r.name, r.arch, self._progress, self._image_dir,
                                        self._mirror)  # fmt: skip

    def register_system_image(self, image_id: int) -> None:
        """Make `image_id` (a system image of the model's catalog) boot the recipe of its name
        and architecture (names without a recipe boot debian-12 of that architecture)."""
        img = find_system_image(image_id)
        self._images[image_id] = (
            recipe(img.name, img.architecture) if img is not None else DEFAULT_RECIPE
        )

    def _image(self, image_id: int) -> Recipe | list[Path]:
        """A system image's recipe, or a snapshot's layers."""
        if image_id not in self._images:
            raise EmulatorInputError(
                f"unknown image {image_id} (register_system_image or snapshot first)"
            )
        return self._images[image_id]

    async def _layers(self, image_id: int) -> list[Path]:
        layers = self._image(image_id)
        if isinstance(layers, Recipe):
            if not image_ready(layers, self._image_dir):
                await self.ensure_image(layers)
            return [image_path(layers, self._image_dir)]
        return list(layers)

    def _suite_and_name(self, image_id: int) -> tuple[str, str]:
        """The Debian suite of an image and how to name it in a message."""
        layers = self._image(image_id)
        if isinstance(layers, Recipe):
            return layers.suite, layers.name
        return _debian_suite(layers), f"snapshot {image_id}"

    async def snapshot(self, server_id: int, image_id: int) -> None:
        m = self._machines[server_id]
        dest = self.root / "images" / str(image_id)
        await asyncio.to_thread(_copy_layer, m.upper, dest)
        self._images[image_id] = [dest, *m.lowers]

    async def delete_image(self, image_id: int) -> None:
        """Forget the image; its layer stays while servers built from it still use it."""
        self._images.pop(image_id, None)
        dest = self.root / "images" / str(image_id)
        if dest.exists() and not any(dest in m.lowers for m in self._machines.values()):
            await asyncio.to_thread(shutil.rmtree, dest, True)

    # -- machines -----------------------------------------------------------------------------
    async def create(self, spec: MachineSpec) -> None:
        if spec.server_id in self._machines:
            raise EmulatorInputError(f"machine {spec.server_id} exists")
        if spec.architecture == "arm":  # before an image is built for it (17 min for arm64)
            binfmt.refuse_unbootable(*self._suite_and_name(spec.image_id))
        lowers = await self._layers(spec.image_id)
        for lower in lowers:
            if not lower.is_dir():
                raise FileNotFoundError(f"image layer {lower} missing (prepare_images first)")
        d = self.root / "servers" / str(spec.server_id)
        m = _Machine(spec, d, lowers, MachineCgroups(self.lab.prefix, f"s{spec.server_id}"))
        shutil.rmtree(d, ignore_errors=True)
        for p in (m.upper, m.work, m.merged):
            p.mkdir(parents=True)
        _write_seed(m.upper, spec)
        if self.apt is not None:
            _write_apt_sources(m.upper, self.apt.sources(_debian_suite(lowers)))
        self._machines[spec.server_id] = m
        try:
            await self.lab.add_server(spec.server_id, spec.public_ipv4, spec.server_type)
            for att in spec.private_networks:
                await self.attach_network(spec.server_id, att)
        except BaseException:
            await self.destroy(spec.server_id)
            raise

    def _nspawn_args(self, m: _Machine) -> list[str]:
        sid = m.spec.server_id
        return [
            "systemd-nspawn",
            "--quiet",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--link-journal=no",
            "--console=read-only",
            f"--machine={self.lab.prefix}-s{sid}",
            f"--directory={m.merged}",
            f"--network-namespace-path={self.lab.server_netns_path(sid)}",
            # root in the guest configures its private NICs (DHCP) as on a VM; nspawn keeps
            # CAP_NET_ADMIN for --private-network only, not for a namespace given by path
            "--capability=CAP_NET_ADMIN",
            *self._arm_args(m),
        ]

    @staticmethod
    def _arm_args(m: _Machine) -> list[str]:
        """An arm guest under qemu-user is halted with another signal (binfmt.py says why)."""
        signal_ = binfmt.nspawn_kill_signal() if m.spec.architecture == "arm" else None
        return [f"--kill-signal={signal_}"] if signal_ else []

    def _launch_script(self, m: _Machine) -> str:
        lowerdir = ":".join(str(p) for p in m.lowers)
        opts = f"lowerdir={lowerdir},upperdir={m.upper},workdir={m.work}"
        return (
            "set -e\n"
            + m.cgroups.join_script()
            + f"mount -t overlay overlay -o {shlex.quote(opts)} {shlex.quote(str(m.merged))}\n"
            + f"mount -t tmpfs -o mode=0755 tmpfs {NSPAWN_RUN_DIR}\n"
            + "exec "
            + " ".join(shlex.quote(a) for a in self._nspawn_args(m))
            + "\n"
        )

    def _open_console(self, m: _Machine) -> BinaryIO:
        (m.dir / "launch.sh").write_text(self._launch_script(m))
        console = open(m.dir / "console.log", "ab")  # noqa: SIM115 - handed to the child
        m.boots += 1
        console.write(f"\n=== boot {m.boots} at {time.ctime()} ===\n".encode())
        console.flush()
        return console

    async def _launch(self, m: _Machine) -> asyncio.subprocess.Process:
        script = m.dir / "launch.sh"
        await self.lab.reset_private_nics(m.spec.server_id)
        console = await asyncio.to_thread(self._open_console, m)
        try:
            proc = await asyncio.create_subprocess_exec(
                "unshare", "--mount", "--propagation", "private", "sh", str(script),
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        finally:
            console.close()
        return proc

    async def power_on(self, server_id: int) -> None:
        m = self._machines[server_id]
        if m.task is not None:
            return
        m.requested_stop = False
        if m.spec.architecture == "arm":  # registered once per host boot; a clear error if not
            await asyncio.to_thread(binfmt.ensure_aarch64)
        await asyncio.to_thread(m.cgroups.create, m.spec.memory_mib, m.spec.cpus)
        proc = await self._launch(m)
        m.proc = proc
        m.task = asyncio.create_task(self._supervise(m, proc), name=f"machine-{server_id}")

    async def _supervise(self, m: _Machine, proc: asyncio.subprocess.Process) -> None:
        sid = m.spec.server_id
        while True:
            rc = await proc.wait()
            logger.info("machine %s: nspawn exited %s", sid, rc)
            if rc == EXIT_REBOOT and not m.requested_stop:
                await self._reap(m)
                try:
                    proc = await self._launch(m)
                except Exception:
                    logger.exception("machine %s: relaunch after reboot failed", sid)
                    break
                m.proc = proc
                continue
            break
        await self._reap(m)
        await asyncio.to_thread(m.cgroups.remove)
        # no await from here on: the model hears of the exit in the same step that
        # `is_running` turns false, so no one sees a stopped machine the model thinks is on
        m.proc = None
        m.task = None
        if not m.requested_stop and self._callback is not None:
            try:
                self._callback(sid, rc)
            except Exception:
                logger.exception("exit callback for machine %s failed", sid)

    def _pids(self, m: _Machine) -> set[int]:
        """Every process of the machine: its groups, its netns, and nspawn itself."""
        pids = m.cgroups.pids()
        ns = self.lab.server_netns_path(m.spec.server_id)
        try:
            ino = os.stat(ns).st_ino
        except OSError:
            ino = None
        if ino is not None:
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    with contextlib.suppress(OSError):
                        if os.stat(f"/proc/{entry}/ns/net").st_ino == ino:
                            pids.add(int(entry))
        if m.proc is not None and m.proc.returncode is None:
            pids.add(m.proc.pid)
        pids.discard(os.getpid())
        return pids

    def _guest_init(self, m: _Machine) -> int | None:
        """Host pid of the container's PID 1."""
        for pid in self._pids(m):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("NSpid:"):
                        ids = line.split()[1:]
                        if len(ids) > 1 and ids[-1] == "1":
                            return pid
        return None

    async def _reap(self, m: _Machine) -> None:
        """After nspawn exited: make sure nothing of the guest lingers."""
        for _ in range(50):
            pids = self._pids(m)
            if m.proc is not None:
                pids.discard(m.proc.pid)
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.1)

    async def _hard_stop(self, m: _Machine, requested: bool) -> None:
        if m.task is None:
            return
        m.requested_stop = requested
        task = m.task
        for _ in range(100):
            if task.done():
                break
            for pid in self._pids(m):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.wait([task], timeout=0.1)
        await task

    async def power_off(self, server_id: int) -> None:
        await self._hard_stop(self._machines[server_id], requested=True)

    async def shutdown(self, server_id: int, timeout: float) -> None:
        m = self._machines[server_id]
        if m.task is None:
            return
        m.requested_stop = True
        task = m.task
        if m.proc is not None and m.proc.returncode is None:
            # nspawn turns SIGTERM into an orderly shutdown of the guest
            with contextlib.suppress(ProcessLookupError):
                m.proc.send_signal(signal.SIGTERM)
        done, _ = await asyncio.wait([task], timeout=timeout)
        if not done:
            logger.info("machine %s: no shutdown after %s s, pulling the plug", server_id, timeout)
            await self._hard_stop(m, requested=True)

    async def reboot(self, server_id: int) -> None:
        m = self._machines[server_id]
        if m.task is None:
            return
        init = self._guest_init(m)
        if init is None:
            raise EmulatorError(f"machine {server_id}: guest init not found")
        os.kill(init, signal.SIGINT)  # systemd: ctrl-alt-del.target, a reboot

    async def kill(self, server_id: int) -> None:
        await self._hard_stop(self._machines[server_id], requested=False)

    async def destroy(self, server_id: int) -> None:
        m = self._machines.get(server_id)
        if m is not None:
            await self._hard_stop(m, requested=True)
            m.cgroups.remove()
        await self.lab.remove_server(server_id)
        self._machines.pop(server_id, None)
        # the disk may hold a whole Python environment (seconds to delete): move it aside at
        # once, as Hetzner frees a deleted server at once, and delete it in the background
        d = self.root / "servers" / str(server_id)
        trash = self.root / "trash" / f"{server_id}-{time.monotonic_ns()}"
        try:
            trash.parent.mkdir(parents=True, exist_ok=True)
            d.rename(trash)
        except FileNotFoundError:
            return
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(shutil.rmtree, trash, True))
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)

    def is_running(self, server_id: int) -> bool:
        m = self._machines.get(server_id)
        return m is not None and m.task is not None

    # -- networks and firewalls --------------------------------------------------------------
    async def attach_network(self, server_id: int, attachment: PrivateAttachment) -> None:
        nic = await self.lab.attach(server_id, attachment)
        self._machines[server_id].attachments[attachment.network_id] = attachment
        # a running guest learns of the new NIC as from udev (a booting one finds it by its scan)
        await self._in_guest(server_id, guest_network.hotplug_command(nic))

    async def detach_network(self, server_id: int, network_id: int) -> None:
        nic = self.lab.private_nic(server_id, network_id)
        if nic is not None:  # the guest's DHCP client goes with the NIC (BindsTo= on Hetzner)
            await self._in_guest(server_id, guest_network.unplug_command(nic))
        await self.lab.detach(server_id, network_id)
        m = self._machines.get(server_id)
        if m is not None:
            m.attachments.pop(network_id, None)

    async def delete_network(self, network_id: int) -> None:
        await self.lab.delete_network(network_id)
        for m in self._machines.values():
            m.attachments.pop(network_id, None)

    async def set_firewall(self, server_id: int, policy: FirewallPolicy) -> None:
        await self.lab.set_firewall(server_id, policy)

    # -- for tests and tools -----------------------------------------------------------------
    def cgroup_limits(self, server_id: int) -> dict[str, str]:
        """The limits that could be set for the machine (empty when none could)."""
        return dict(self._machines[server_id].cgroups.limits)

    def console_log(self, server_id: int) -> Path:
        return self.root / "servers" / str(server_id) / "console.log"

    def server_netns_path(self, server_id: int) -> str:
        return self.lab.server_netns_path(server_id)

    async def _in_guest(self, server_id: int, cmd: list[str]) -> None:
        """Run `cmd` in the guest if it runs; a guest that is not up yet is left alone."""
        m = self._machines.get(server_id)
        if m is None or m.task is None or self._guest_init(m) is None:
            return
        try:
            await self.exec_in(server_id, *cmd)
        except Exception as exc:  # booting or shutting down: its own scan covers a boot
            logger.info("machine %s: %s failed: %s", server_id, " ".join(cmd), exc)

    async def exec_in(self, server_id: int, *cmd: str) -> str:
        """Run a command inside the running guest (all its namespaces) and return stdout."""
        m = self._machines[server_id]
        init = self._guest_init(m)
        if init is None:
            raise EmulatorError(f"machine {server_id} is not running")
        return await run("nsenter", "-t", str(init), "-a", *cmd)


def _write_seed(upper: Path, spec: MachineSpec) -> None:
    seed = upper / "var" / "lib" / "cloud" / "seed" / "nocloud"
    seed.mkdir(parents=True, exist_ok=True)
    meta = {
        "instance-id": f"i-{spec.server_id}",
        "local-hostname": spec.hostname,
        "public-keys": list(spec.ssh_public_keys),
    }
    # JSON is YAML; no quoting surprises with keys or odd host names.
    files = {
        "meta-data": json.dumps(meta, indent=2) + "\n",
        "user-data": spec.user_data if spec.user_data is not None else "#cloud-config\n",
        # The lab configures the network from outside; cloud-init must leave it alone.
        "network-config": "config: disabled\n",
    }
    for name, text in files.items():
        p = seed / name
        p.write_bytes(text.encode())
        p.chmod(0o600)


def _debian_suite(lowers: list[Path]) -> str:
    """The Debian code name of the image at the bottom of the layers (from its os-release)."""
    for line in (lowers[-1] / "etc" / "os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME":
            return value.strip().strip('"')
    raise EmulatorInputError(f"{lowers[-1]}: no VERSION_CODENAME in /etc/os-release")


def _write_apt_sources(upper: Path, sources: str) -> None:
    """The server's apt sources (the lab's cache), as Hetzner's images name Hetzner's mirror."""
    d = upper / "etc" / "apt" / "sources.list.d"
    d.mkdir(parents=True, exist_ok=True)
    (d / "debian.sources").write_text(sources)


def _copy_layer(upper: Path, dest: Path) -> None:
    """Copy a server's upper layer (whiteouts and xattrs included) as a clean image layer.

    As it is, like a Hetzner snapshot of a disk: machine-id, SSH host keys and cloud-init's
    state travel unless whoever takes the snapshot resets them first (the product does, see
    cluster/env_images.py). Only the NoCloud seed is dropped: it is this emulator's stand-in for
    the metadata service, not part of the disk, and each new server gets its own.
    """
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["cp", "-a", "--reflink=auto", f"{upper}/.", str(tmp)], check=True)
    shutil.rmtree(tmp / "var" / "lib" / "cloud" / "seed", ignore_errors=True)
    os.rename(tmp, dest)


def _conforms(backend: NspawnBackend) -> MachineBackend:
    """mypy checks here that the class satisfies the protocol."""
    return backend


# Each machine's systemd takes inotify instances; Debian's default of 128 per user lets about
# 20 machines boot, after which new ones fail with "Too many open files".
INOTIFY_MINIMUMS = {"max_user_instances": 8192, "max_user_watches": 524288}


def _raise_inotify_limits() -> None:
    for name, minimum in INOTIFY_MINIMUMS.items():
        path = Path("/proc/sys/fs/inotify") / name
        try:
            if int(path.read_text()) < minimum:
                path.write_text(str(minimum))
                logger.info("raised fs.inotify.%s to %d for the machines", name, minimum)
        except (OSError, ValueError) as exc:
            logger.warning("could not raise fs.inotify.%s (%s): many machines may fail", name, exc)
