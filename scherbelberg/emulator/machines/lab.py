"""One emulator instance's network: a routed "Hetzner" made of network namespaces and veths.

Why: emulated servers must be reachable like real ones (public IPs, private networks, cloud
firewalls) without any lab address ever leaving this machine. Everything lives in network
namespaces we create; the only thing in the host's namespace is one veth (`sbg<k>h`) with the
client address 198.18.k.1/24.

Layout (k = instance index, 0..255, held by an flock on /run/scherbelberg/lab-<k>.lock for the
lifetime of the instance, so a cleanup tool can tell live instances from dead ones):

- `sbg<k>-lab`: the router (ip_forward=1). Local addresses on `lo`: 198.18.k.254 (uplink),
  198.18.k.253 (address-echo service, the PyPI mirror at /simple/, see `mirror.py`, uv's
  Pythons at /python/, see `interpreters.py`, and a conda channel at /conda/, see
  `conda_channel.py`; the API on port 8080, as machines reach it; the apt cache on 3142, see
  `apt_cache.py`),
  172.31.1.1 (every server's gateway, like Hetzner).
  Every attached host gets a /32 route; proxy ARP on the links to the client and the outside
  host answers for the whole /24.
- host ↔ lab: veth `sbg<k>h` (host, 198.18.k.1/24) ↔ `uplink` (lab).
- `sbg<k>-out`: another host on the public network (198.18.k.2/24), for tests of firewalls.
- `sbg<k>-s<id>`: each server's namespace, with `eth0` (public IP/32, default via 172.31.1.1
  onlink) whose peer in the lab is `sbg<k>p<id>`, and its private NICs (`enp7s0`, ... or
  `ens10`, ... by server type; no address: the guest asks DHCP).
- `sbg<k>-n<id>`: each private network's namespace with its gateway and DHCP server
  (`private_net.py`), not connected to the lab, so private traffic never reaches the public side
  or another network. Runtime files under /run/scherbelberg/sbg<k>/.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from scherbelberg.emulator import conda_channel
from scherbelberg.emulator.interpreters import LIST_NAME, MIRROR_PATH, InterpreterMirror
from scherbelberg.emulator.machines.base import FirewallPolicy, PrivateAttachment
from scherbelberg.emulator.machines.cleanup import remove_instance, remove_network_objects
from scherbelberg.emulator.machines.lab_names import (
    LOCK_DIR,
    NETNS_DIR,
    PREFIX,
    host_veth,
    lab_netns,
    lock_path,
    network_netns,
    outside_netns,
    run_dir,
    server_netns,
)
from scherbelberg.emulator.machines.nft_rules import render_ruleset
from scherbelberg.emulator.machines.private_net import PrivateNetwork, private_nic_name
from scherbelberg.emulator.machines.util import in_netns, run
from scherbelberg.emulator.mirror import PypiMirror
from scherbelberg.errors import EmulatorError, EmulatorInputError

logger = logging.getLogger(__name__)

GATEWAY = ipaddress.IPv4Address("172.31.1.1")
API_PORT = 8080  # the emulator's API inside the lab, at the echo address (like api.hetzner.cloud)
IFNAMSIZ = 15


def _ifname(preferred: str, fallback: str) -> str:
    """Interface names are at most 15 characters; names in the lab netns only need to be
    unique there, so a shorter fallback is fine for huge ids."""
    name = preferred if len(preferred) <= IFNAMSIZ else fallback
    if len(name) > IFNAMSIZ:
        raise EmulatorInputError(f"interface name too long: {name}")
    return name


@dataclass
class _Server:
    server_id: int
    public_ip: ipaddress.IPv4Address | None
    lab_if: str
    server_type: str = ""
    # network id -> the guest's NIC name
    private: dict[int, str] = field(default_factory=dict)


class Lab:
    """The network of one emulator instance. `start()` claims an index and builds it."""

    def __init__(self, index: int | None = None, lock_dir: Path = LOCK_DIR) -> None:
        self._want_index = index
        self._lock_dir = lock_dir
        self._lock_fd: int | None = None
        self.index = -1
        self._servers: dict[int, _Server] = {}
        self._networks: dict[int, PrivateNetwork] = {}
        # servers are created concurrently: one lock for the shared pieces of the lab
        self._network_lock = asyncio.Lock()
        self._firewall_lock = asyncio.Lock()
        self._policies: dict[int, FirewallPolicy] = {}
        self._echo_runner: web.AppRunner | None = None
        self.mirror = PypiMirror()
        self.interpreters = InterpreterMirror()
        self.conda_channel = conda_channel.ChannelMirror()

    # -- names and addresses --------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.index}"

    @property
    def public_range(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"198.18.{self.index}.0/24")

    def _addr(self, last: int) -> ipaddress.IPv4Address:
        return self.public_range.network_address + last

    @property
    def client_address(self) -> ipaddress.IPv4Address:
        return self._addr(1)

    @property
    def outside_address(self) -> ipaddress.IPv4Address:
        return self._addr(2)

    @property
    def echo_address(self) -> ipaddress.IPv4Address:
        return self._addr(253)

    @property
    def uplink_address(self) -> ipaddress.IPv4Address:
        return self._addr(254)

    @property
    def reserved_public(self) -> frozenset[ipaddress.IPv4Address]:
        r = self.public_range
        return frozenset(
            {
                r.network_address,
                r.broadcast_address,
                self.client_address,
                self.outside_address,
                self.echo_address,
                self.uplink_address,
            }
        )

    @property
    def echo_url(self) -> str:
        return f"http://{self.echo_address}/"

    @property
    def pip_index_url(self) -> str:
        """The PyPI mirror's simple index (served with the echo service)."""
        return f"http://{self.echo_address}/simple/"

    @property
    def python_downloads_json_url(self) -> str:
        """uv's list of the interpreters built here (served with the echo service)."""
        return f"http://{self.echo_address}{MIRROR_PATH}{LIST_NAME}"

    @property
    def conda_channel_url(self) -> str:
        """The conda channel built here (served with the echo service, see conda_channel.py)."""
        return f"http://{self.echo_address}{conda_channel.MIRROR_PATH.rstrip('/')}"

    @property
    def api_url(self) -> str:
        """The emulator's API as machines reach it (see `api_socket`)."""
        return f"http://{self.echo_address}:{API_PORT}/v1"

    def api_socket(self) -> socket.socket:
        """A socket in the lab at the echo address, port API_PORT, for the API's own runner:
        machines reach the API there as real servers reach api.hetzner.cloud."""
        return self.service_socket(API_PORT)

    def service_socket(self, port: int) -> socket.socket:
        """A socket at the service address (the echo address) in the lab, for services the
        emulator serves to machines from the host's namespace (the echo service, the API, the
        apt cache)."""
        with in_netns(str(NETNS_DIR / self.lab_ns)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((str(self.echo_address), port))
        sock.setblocking(False)
        return sock

    @property
    def lab_ns(self) -> str:
        return lab_netns(self.index)

    @property
    def outside_ns(self) -> str:
        return outside_netns(self.index)

    @property
    def outside_netns_path(self) -> str:
        return str(NETNS_DIR / self.outside_ns)

    def server_ns(self, server_id: int) -> str:
        return server_netns(self.index, server_id)

    def server_netns_path(self, server_id: int) -> str:
        return str(NETNS_DIR / self.server_ns(server_id))

    @property
    def started(self) -> bool:
        return self._lock_fd is not None

    # -- lifecycle ---------------------------------------------------------------------------
    def _claim_index(self) -> None:
        self._lock_dir.mkdir(parents=True, exist_ok=True)
        candidates = [self._want_index] if self._want_index is not None else range(256)
        for k in candidates:
            fd = os.open(lock_path(k, self._lock_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._lock_fd = fd
            self.index = k
            return
        raise EmulatorError(f"no free lab index (locks in {self._lock_dir} all held)")

    async def start(self) -> None:
        """Claim an index, remove a dead instance's leftovers there, build the network."""
        if self.started:
            return
        self._claim_index()
        try:
            await remove_instance(self.index)  # leftovers of a crashed instance with our index
            await self._build()
        except BaseException:
            await self.stop()
            raise

    async def _build(self) -> None:
        k, lab = self.index, self.lab_ns
        await run("ip", "netns", "add", lab)
        await self._sysctls(
            lab,
            {
                "net.ipv4.ip_forward": "1",
                "net.ipv4.conf.all.rp_filter": "0",
                "net.ipv4.conf.default.rp_filter": "0",
                "net.ipv6.conf.all.disable_ipv6": "1",
                "net.ipv6.conf.default.disable_ipv6": "1",
                "net.bridge.bridge-nf-call-iptables": "0",
                "net.bridge.bridge-nf-call-ip6tables": "0",
                "net.bridge.bridge-nf-call-arptables": "0",
            },
        )
        await run("ip", "-n", lab, "link", "set", "lo", "up")
        for a in (self.uplink_address, self.echo_address, GATEWAY):
            await run("ip", "-n", lab, "addr", "add", f"{a}/32", "dev", "lo")
        # host <-> lab
        hv = host_veth(k)
        await run("ip", "link", "add", hv, "type", "veth", "peer", "name", "uplink", "netns", lab)
        await run("ip", "addr", "add", f"{self.client_address}/24", "dev", hv)
        await run("ip", "link", "set", hv, "up")
        await self._sysctls(lab, {"net.ipv4.conf.uplink.proxy_arp": "1"})
        await run("ip", "-n", lab, "link", "set", "uplink", "up")
        await run("ip", "-n", lab, "route", "add", f"{self.client_address}/32", "dev", "uplink")
        # outside host <-> lab
        out = self.outside_ns
        await run("ip", "netns", "add", out)
        await run("ip", "-n", out, "link", "set", "lo", "up")
        await run(
            "ip", "link", "add", "outside", "netns", lab, "type", "veth",
            "peer", "name", "eth0", "netns", out,
        )  # fmt: skip
        await run("ip", "-n", out, "addr", "add", f"{self.outside_address}/24", "dev", "eth0")
        await run("ip", "-n", out, "link", "set", "eth0", "up")
        await self._sysctls(lab, {"net.ipv4.conf.outside.proxy_arp": "1"})
        await run("ip", "-n", lab, "link", "set", "outside", "up")
        await run("ip", "-n", lab, "route", "add", f"{self.outside_address}/32", "dev", "outside")
        await self._apply_firewall()
        await self._start_echo()
        logger.info("lab %s up: public %s, echo %s", self.prefix, self.public_range, self.echo_url)

    async def stop(self) -> None:
        """Tear everything down (servers' namespaces included) and release the index."""
        if self._echo_runner is not None:
            await self._echo_runner.cleanup()
            self._echo_runner = None
        await self.mirror.close()
        for net in list(self._networks.values()):
            await net.stop()
        if self.index >= 0:
            await remove_network_objects(self.index)
        self._servers.clear()
        self._networks.clear()
        self._policies.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    async def _sysctls(self, ns: str, values: dict[str, str]) -> None:
        for key, value in values.items():
            path = "/proc/sys/" + key.replace(".", "/")
            # /proc/sys/net shows the namespace of the process that opens it
            await run("nsenter", f"--net={NETNS_DIR / ns}", "sh", "-c", f"echo {value} > {path}",
                      check=not key.startswith("net.bridge."))  # fmt: skip

    # -- echo service --------------------------------------------------------------------------
    async def _start_echo(self) -> None:
        async def echo(request: web.Request) -> web.Response:
            return web.Response(text=f"{request.remote}\n")

        app = web.Application()
        self.mirror.add_routes(app)  # before the catch-all
        self.interpreters.add_routes(app)
        self.conda_channel.add_routes(app)
        app.router.add_get("/{tail:.*}", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.SockSite(runner, self.service_socket(80))
        await site.start()
        self._echo_runner = runner

    # -- servers ---------------------------------------------------------------------------
    async def add_server(
        self, server_id: int, public_ip: ipaddress.IPv4Address | None, server_type: str = ""
    ) -> str:
        """Create the server's namespace with `eth0` wired to the lab; returns the netns path.
        `server_type` (the Hetzner type's name) decides the names of its private NICs."""
        if server_id in self._servers:
            return self.server_netns_path(server_id)
        ns, lab = self.server_ns(server_id), self.lab_ns
        lab_if = _ifname(f"{self.prefix}p{server_id}", f"p{server_id}")
        await run("ip", "netns", "add", ns)
        self._servers[server_id] = _Server(server_id, public_ip, lab_if, server_type)
        await run("ip", "-n", ns, "link", "set", "lo", "up")
        await run(
            "ip", "link", "add", lab_if, "netns", lab, "type", "veth",
            "peer", "name", "eth0", "netns", ns,
        )  # fmt: skip
        await run("ip", "-n", lab, "link", "set", lab_if, "up")
        await run("ip", "-n", ns, "link", "set", "eth0", "up")
        if public_ip is not None:
            await run("ip", "-n", lab, "route", "add", f"{public_ip}/32", "dev", lab_if)
            await run("ip", "-n", ns, "addr", "add", f"{public_ip}/32", "dev", "eth0")
            await run("ip", "-n", ns, "route", "add", f"{GATEWAY}", "dev", "eth0", "scope", "link")
            await run("ip", "-n", ns, "route", "add", "default", "via", f"{GATEWAY}", "dev", "eth0",
                      "onlink")  # fmt: skip
        if server_id in self._policies:
            await self._apply_firewall()
        return self.server_netns_path(server_id)

    async def remove_server(self, server_id: int) -> None:
        """Remove the namespace (its veths go with it). Processes must be gone already."""
        srv = self._servers.get(server_id)
        if srv is not None:
            # out of every private network first (detach looks the server up): its DHCP lease
            # must go, or a later server given the same address gets no answer
            for network_id in list(srv.private):
                await self.detach(server_id, network_id)
        self._servers.pop(server_id, None)
        if self._policies.pop(server_id, None) is not None:
            await self._apply_firewall()
        if srv is not None:
            await run("ip", "-n", self.lab_ns, "link", "del", srv.lab_if, check=False)
        await run("ip", "netns", "del", self.server_ns(server_id), check=False)

    # -- private networks ------------------------------------------------------------------
    async def _ensure_network(self, att: PrivateAttachment) -> PrivateNetwork:
        async with self._network_lock:
            net = self._networks.get(att.network_id)
            if net is None:
                net = PrivateNetwork(
                    network_netns(self.index, att.network_id),
                    att.network_id,
                    att.ip_range,
                    att.gateway,
                    run_dir(self.index) / f"n{att.network_id}",
                )
                await net.start()
                self._networks[att.network_id] = net
        return net

    async def attach(self, server_id: int, attachment: PrivateAttachment) -> str:
        """Plug the server into the network as its next private NIC (by Hetzner's naming for
        its type), without an address; returns the NIC's name in the guest."""
        srv = self._servers[server_id]
        if attachment.network_id in srv.private:
            await self.detach(server_id, attachment.network_id)
        net = await self._ensure_network(attachment)
        used = set(srv.private.values())
        guest = next(
            name
            for slot in range(80)
            if (name := private_nic_name(srv.server_type, slot)) not in used
        )
        await net.plug(server_id, self.server_ns(server_id), guest, attachment)
        srv.private[attachment.network_id] = guest
        return guest

    def private_nic(self, server_id: int, network_id: int) -> str | None:
        """The guest's name of the server's NIC in the network (None: not attached)."""
        srv = self._servers.get(server_id)
        return srv.private.get(network_id) if srv is not None else None

    async def reset_private_nics(self, server_id: int) -> None:
        """Before each boot: private NICs down and without address, as a real boot finds them
        (the namespace outlives the guest, and the last boot's DHCP address stays on it)."""
        srv = self._servers.get(server_id)
        if srv is None:
            return
        ns = self.server_ns(server_id)
        for guest in srv.private.values():
            await run("ip", "-n", ns, "addr", "flush", "dev", guest, check=False)
            await run("ip", "-n", ns, "link", "set", guest, "down", check=False)

    async def detach(self, server_id: int, network_id: int) -> None:
        srv = self._servers.get(server_id)
        if srv is None or network_id not in srv.private:
            return
        srv.private.pop(network_id)
        net = self._networks.get(network_id)
        if net is not None:
            await net.unplug(server_id)

    async def delete_network(self, network_id: int) -> None:
        for srv in self._servers.values():
            if network_id in srv.private:
                await self.detach(srv.server_id, network_id)
        net = self._networks.pop(network_id, None)
        if net is not None:
            await net.stop()

    # -- firewalls -------------------------------------------------------------------------
    async def set_firewall(self, server_id: int, policy: FirewallPolicy) -> None:
        self._policies[server_id] = policy
        await self._apply_firewall()

    def _ruleset(self) -> str:
        by_if = {
            self._servers[sid].lab_if: p
            for sid, p in self._policies.items()
            if sid in self._servers
        }
        return render_ruleset(by_if)

    async def _apply_firewall(self) -> None:
        # render inside the lock: the last ruleset applied is always the newest state's
        async with self._firewall_lock:
            await run("nsenter", f"--net={NETNS_DIR / self.lab_ns}", "nft", "-f", "-",
                      input=self._ruleset())  # fmt: skip
