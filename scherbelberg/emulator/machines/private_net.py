"""Private networks as on Hetzner: routed at layer 3 through the network's gateway, addresses
handed out by DHCP.

Why: on Hetzner a private network is not a switch. Each server's private NIC (MAC 86:00:00:..,
named by the server type, MTU 1450) gets its address by DHCP as a /32, with classless static
routes (option 121): the gateway (the network's first address) on-link and the network's range
via the gateway; every packet between members goes through the gateway (docs.hetzner.com,
"Networks: architecture": cloud subnets are layer 3, "the source has to use ARP to resolve the
MAC address of the gateway"; its example routes: 10.0.0.0/16 via 10.0.0.1, 10.0.0.1/32
on-link). hetzner-reality.md "Private networks inside the guest" has the guest's side.

Layout of network `id` of lab instance k: a network namespace `sbg<k>-n<id>` (so networks of
different projects may use the same range) holding
- one veth per member: `m<server id>` here, its peer (the guest NIC, no address) in the
  server's namespace;
- the gateway: a bridge `br0` with the network's first address, forwarding on, and the member
  veths as *isolated* bridge ports (a port talks to the gateway only, never to another port);
  so members only reach each other through the gateway, routed, and a server that is not a
  member has no way in at all. (Not the gateway address on each member veth: dnsmasq then
  ignored the DHCP requests of members plugged in after the first.)
- dnsmasq (Debian's), serving DHCP on the member ports: static leases only (the address the API
  assigned, by MAC; an unknown MAC gets no answer), netmask /32, option 121, lease time one day
  (the valid_lft Hetzner guests show), no router, DNS or host name options.
Runtime files (dnsmasq's host and option files, one per member) live in
`/run/scherbelberg/sbg<k>/n<id>/`; dnsmasq rereads them by itself (inotify).

Fault: a member plugged in with `dhcp_silence` > 0 gets no answer from its first DHCP request
until that many seconds later, so the guest's one try fails (Faults.dhcp_first_try_lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from scherbelberg.emulator.machines.base import PrivateAttachment, private_mac
from scherbelberg.emulator.machines.util import run, stop_process
from scherbelberg.errors import EmulatorError

logger = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")
# The private NIC's MTU on Hetzner (an `ip addr` of a cpx server's enp7s0 in
# lukebfox/nixops-hetznercloud#3 shows mtu 1450).
MTU = 1450
LEASE_SECONDS = 86400  # valid_lft 86060 s right after boot in the same issue: a one-day lease
BRIDGE = "br0"
START_SECONDS = 5.0  # dnsmasq says "started" within milliseconds; this long and it failed
READ_SECONDS = 2.0  # dnsmasq reads a new host file within milliseconds (inotify)
STOP_SECONDS = 5.0

# "DHCPDISCOVER(m5) 86:00:00:..." or "DHCPREQUEST(m5) 10.0.0.2 86:00:00:..." in dnsmasq's log
_REQUEST = re.compile(r"DHCP(?:DISCOVER|REQUEST)\(\S+\) (?:\S+ )?((?:[0-9a-f]{2}:){5}[0-9a-f]{2})")


def private_nic_name(server_type: str, slot: int) -> str:
    """The guest's name of its private NIC number `slot` (0 for the first network).

    Hetzner's names follow the server type: CX*1 and CCX*1 (the old Intel types) name them
    ens10, ens11, ...; CX*2, CPX, CAX, CCX*2 and CCX*3 enp7s0, enp8s0, ...
    (hetzneronline/community-content#1215, after docs.hetzner.com "Networks: server
    configuration"; lukebfox/nixops-hetznercloud#3 shows the two schemes). CX*3 (cx23..., 2025)
    is not in that table: it gets the newer scheme too, as every type since the CX*2.
    """
    if re.fullmatch(r"c?cx\d1", server_type):
        return f"ens{10 + slot}"
    return f"enp{7 + slot}s0"


@dataclass
class _Member:
    server_id: int
    port: str
    mac: str
    ip: ipaddress.IPv4Address
    silence: float = 0.0  # seconds of silence from the first request (0: answered at once)


@dataclass
class PrivateNetwork:
    """One private network's namespace, gateway and DHCP server. `start()` builds it."""

    ns: str  # the network namespace's name, sbg<k>-n<id>
    network_id: int
    ip_range: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    run_dir: Path
    members: dict[int, _Member] = field(default_factory=dict)
    _dnsmasq: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _read: set[str] = field(default_factory=set)  # files dnsmasq said it read
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def ns_path(self) -> str:
        return str(NETNS_DIR / self.ns)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if shutil.which("dnsmasq") is None:
            raise EmulatorError("private networks need dnsmasq (apt-get install dnsmasq-base)")
        await run("ip", "netns", "add", self.ns)
        try:
            await self._build()
        except BaseException:
            await self.stop()
            raise

    async def _build(self) -> None:
        await run("ip", "-n", self.ns, "link", "set", "lo", "up")
        sysctls = {
            "net.ipv4.ip_forward": "1",
            "net.ipv4.conf.all.rp_filter": "0",
            "net.ipv4.conf.default.rp_filter": "0",
            "net.ipv4.conf.all.send_redirects": "0",
            "net.ipv4.conf.default.send_redirects": "0",
            "net.ipv6.conf.all.disable_ipv6": "1",
            "net.ipv6.conf.default.disable_ipv6": "1",
        }
        script = "".join(
            f"echo {value} > /proc/sys/{key.replace('.', '/')}\n" for key, value in sysctls.items()
        )
        await run("nsenter", f"--net={self.ns_path}", "sh", "-c", script)
        await run("ip", "-n", self.ns, "link", "add", BRIDGE, "mtu", str(MTU), "type", "bridge")
        # a fixed MAC: a bridge otherwise takes its lowest port's, which changes when that
        # member leaves, and the members' ARP entries for the gateway go stale (lost traffic)
        n = self.network_id & 0xFFFFFF
        mac = f"02:00:00:{n >> 16:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"
        await run("ip", "-n", self.ns, "link", "set", BRIDGE, "address", mac)
        gw_cidr = f"{self.gateway}/{self.ip_range.prefixlen}"
        await run("ip", "-n", self.ns, "addr", "add", gw_cidr, "dev", BRIDGE)
        await run("ip", "-n", self.ns, "link", "set", BRIDGE, "up")
        for sub in ("hosts", "opts", "tmp"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        await self._start_dnsmasq()

    async def _start_dnsmasq(self) -> None:
        """dnsmasq reads its host and option directories at start and follows them (inotify).
        Files that go away need a restart: its SIGHUP reread left it deaf to DHCP (2.90)."""
        gw, net = self.gateway, self.ip_range
        cmd = [
            "nsenter", f"--net={self.ns_path}",
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            "--user=root", "--group=root", "--pid-file=", "--log-facility=-", "--log-dhcp",
            "--leasefile-ro", "--dhcp-ignore-names", "--dhcp-authoritative",
            f"--dhcp-range={net.network_address},static,{net.netmask},{LEASE_SECONDS}",
            f"--dhcp-hostsdir={self.run_dir / 'hosts'}",
            f"--dhcp-optsdir={self.run_dir / 'opts'}",
            "--dhcp-option=option:netmask,255.255.255.255",
            "--dhcp-option=option:router",  # no value: no router option
            f"--dhcp-option=option:classless-static-route,{gw}/32,0.0.0.0,{net},{gw}",
        ]  # fmt: skip
        self._dnsmasq = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        started = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_log(started), name=f"dnsmasq-{self.ns}")
        try:
            await asyncio.wait_for(started, START_SECONDS)
        except TimeoutError:
            raise EmulatorError(
                f"dnsmasq for {self.ns} did not start in {START_SECONDS} s"
            ) from None

    async def _read_log(self, started: asyncio.Future[None]) -> None:
        """dnsmasq's log: its start, and each member's first DHCP request (for the fault)."""
        proc = self._dnsmasq
        assert proc is not None and proc.stderr is not None
        tail: list[str] = []
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            tail = [*tail[-20:], line]
            logger.debug("%s: %s", self.ns, line)
            if not started.done() and "started, version" in line:
                started.set_result(None)
            if line.split(": ", 1)[-1].startswith("read "):
                self._read.add(line.split(": read ", 1)[-1].strip())
            m = _REQUEST.search(line)
            if m:
                self._requested(m.group(1))
        if not started.done():
            started.set_exception(RuntimeError(f"dnsmasq for {self.ns} failed: " + "\n".join(tail)))

    async def stop(self) -> None:
        """Stop dnsmasq and remove the namespace (member veths go with it) and files."""
        for task in list(self._tasks):
            task.cancel()
        await self._stop_dnsmasq()
        await run("ip", "netns", "del", self.ns, check=False)
        await asyncio.to_thread(shutil.rmtree, self.run_dir, True)
        self.members.clear()

    async def _stop_dnsmasq(self) -> None:
        proc, self._dnsmasq = self._dnsmasq, None
        await stop_process(proc, STOP_SECONDS)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, STOP_SECONDS)
            self._reader = None

    # -- members ---------------------------------------------------------------------------
    async def plug(self, server_id: int, server_ns: str, guest: str, att: PrivateAttachment) -> str:
        """Wire the server in as NIC `guest` (no address: the guest asks DHCP); returns the
        NIC's MAC."""
        port = f"m{server_id}"
        mac = private_mac(server_id, self.network_id)
        member = _Member(server_id, port, mac, att.ip, att.dhcp_silence)
        # the lease first, so the guest's first request is answered (unless the fault says no)
        if member.silence <= 0:
            await self._add_lease(member)
        self.members[server_id] = member
        await run(
            "ip", "link", "add", port, "netns", self.ns, "mtu", str(MTU), "type", "veth",
            "peer", "name", guest, "address", mac, "mtu", str(MTU), "netns", server_ns,
        )  # fmt: skip
        # checksums of what the gateway sends (DHCP answers) filled in here, not left to an
        # offload: an arm guest's dhclient under qemu-user cannot set PACKET_AUXDATA (ENOPROTOOPT),
        # so it cannot tell a checksum left to offload from a bad one and drops every offer
        await run("nsenter", f"--net={self.ns_path}", "ethtool", "-K", port, "tx", "off")
        await run("ip", "-n", self.ns, "link", "set", port, "master", BRIDGE, "up")
        await run("bridge", "-n", self.ns, "link", "set", "dev", port, "isolated", "on")
        return mac

    async def unplug(self, server_id: int) -> None:
        member = self.members.pop(server_id, None)
        if member is None:
            return
        await run("ip", "-n", self.ns, "link", "del", member.port, check=False)
        await asyncio.to_thread(self._remove_lease, member)
        await self._restart_dnsmasq()  # it only ever adds what appears in its directories

    async def _restart_dnsmasq(self) -> None:
        async with self._lock:
            await self._stop_dnsmasq()
            await self._start_dnsmasq()

    async def _add_lease(self, member: _Member) -> None:
        """Write the member's files; dnsmasq says "read <file>" when it has them. A file
        written while it starts (between its first read and its watch) would stay unread:
        restart it then."""
        hosts, _opts = self._files(member)
        self._read.discard(str(hosts))
        await asyncio.to_thread(self._write_lease, member)
        deadline = time.monotonic() + READ_SECONDS
        while str(hosts) not in self._read:
            if time.monotonic() > deadline:
                logger.info("%s: dnsmasq did not read %s: restarting it", self.ns, hosts)
                await self._restart_dnsmasq()
                return
            await asyncio.sleep(0.02)

    def _files(self, member: _Member) -> tuple[Path, Path]:
        name = f"s{member.server_id}"
        return self.run_dir / "hosts" / name, self.run_dir / "opts" / name

    def _write_lease(self, member: _Member) -> None:
        hosts, opts = self._files(member)
        tag = f"s{member.server_id}"
        # options first: dnsmasq may answer as soon as the host line is there
        _write_atomic(opts, f"tag:{tag},28,{member.ip}\n")  # 28: broadcast, the address itself
        _write_atomic(hosts, f"{member.mac},set:{tag},{member.ip}\n")

    def _remove_lease(self, member: _Member) -> None:
        for path in self._files(member):
            path.unlink(missing_ok=True)

    def _requested(self, mac: str) -> None:
        """A DHCP request came from `mac`: a silenced member's silence starts now."""
        member = next((m for m in self.members.values() if m.mac == mac), None)
        if member is None or member.silence <= 0:
            return
        seconds, member.silence = member.silence, 0.0
        logger.info(
            "%s: fault: no DHCP answer to %s (server %s) for %.0f s",
            self.ns, mac, member.server_id, seconds,
        )  # fmt: skip
        task = asyncio.get_running_loop().create_task(self._answer_later(member, seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_later(self, member: _Member, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self.members.get(member.server_id) is member:
            await self._add_lease(member)


def _write_atomic(path: Path, text: str) -> None:
    """dnsmasq reads a file when inotify says it changed: never let it see half a file (nor
    the temporary file: it is written outside the directory dnsmasq watches)."""
    tmp = path.parent.parent / "tmp" / f"{path.parent.name}-{path.name}.{time.monotonic_ns()}"
    tmp.write_text(text)
    tmp.rename(path)
