"""The contract between the emulator's state (servers, networks, firewalls) and the machines.

The model decides *what* exists (which server, which address, which rules); a backend makes it
real. Nothing here knows about HTTP, and the backend never sees a Hetzner JSON object.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

Protocol_ = Literal["tcp", "udp", "icmp", "esp", "gre"]


@dataclass(frozen=True)
class FirewallRule:
    """One Hetzner firewall rule, already validated (CIDRs parsed, port range split)."""

    direction: Literal["in", "out"]
    protocol: Protocol_
    # None for icmp/esp/gre (no ports) and for "any port" on tcp/udp
    port_range: tuple[int, int] | None
    # source_ips for "in", destination_ips for "out"
    addresses: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


@dataclass(frozen=True)
class FirewallPolicy:
    """What the public interface of one server lets through.

    `applied` is False when no firewall is applied to the server: everything passes. When
    applied, inbound traffic not matched by an "in" rule is dropped (so it times out), and
    outbound traffic is dropped only if at least one "out" rule exists (Hetzner's semantics).
    Replies to allowed connections always pass (stateful).
    """

    applied: bool
    rules: tuple[FirewallRule, ...] = ()


@dataclass(frozen=True)
class PrivateAttachment:
    """A server's place in one private network."""

    network_id: int
    ip: ipaddress.IPv4Address
    ip_range: ipaddress.IPv4Network  # the whole network's range (e.g. 10.0.0.0/16)
    gateway: ipaddress.IPv4Address  # the network's first address, reserved by Hetzner
    # a fault: the network's DHCP server ignores the server from its first request on for this
    # many seconds, so the guest's single try fails (Faults.dhcp_first_try_lost); 0: no fault
    dhcp_silence: float = 0.0


def private_mac(server_id: int, network_id: int) -> str:
    """The MAC of a server's NIC in a private network (the API's `private_net[].mac_address`).

    Hetzner's start with 86:00:00 (hc-utils' udev rule matches `enx860000*`; real ones in
    hetznercloud/terraform-provider-hcloud#512: 86:00:00:05:94:f2); the rest only has to
    differ between the members of one network (7919 is odd: distinct ids below 2**24 apart
    never collide).
    """
    raw = (server_id * 7919 + network_id) & 0xFFFFFF
    return "86:00:00:" + ":".join(f"{(raw >> s) & 0xFF:02x}" for s in (16, 8, 0))


@dataclass
class MachineSpec:
    """Everything a backend needs to build and boot one server's machine."""

    server_id: int
    hostname: str  # the Hetzner server name
    image_id: int  # a system image id or a snapshot id made with `snapshot`
    public_ipv4: ipaddress.IPv4Address | None
    user_data: str | None  # handed to cloud-init byte for byte (NoCloud seed)
    ssh_public_keys: list[str] = field(default_factory=list)  # authorized for root
    private_networks: list[PrivateAttachment] = field(default_factory=list)
    memory_mib: int = 4096  # from the server type, enforced as a cgroup limit where possible
    cpus: int = 2  # from the server type, a CPU share where possible
    architecture: Literal["x86", "arm"] = "x86"
    server_type: str = ""  # the Hetzner type's name: the guest's private NIC names follow it


# Called by the backend when a machine stops on its own (crash, `poweroff` inside the guest, or
# `kill`): the model turns the server `off`. Arguments: server id, exit code.
MachineExitCallback = Callable[[int, int], None]


class MachineBackend(Protocol):
    """A place where servers become machines. See `nspawn.NspawnBackend` and `null.NullBackend`."""

    name: str

    # -- the lab ------------------------------------------------------------------------------
    @property
    def public_range(self) -> ipaddress.IPv4Network:
        """Addresses the model hands out as servers' public IPv4 (minus `reserved_public`)."""

    @property
    def reserved_public(self) -> frozenset[ipaddress.IPv4Address]:
        """Addresses of the public range that are not for servers (client, echo, outside host)."""

    @property
    def client_address(self) -> ipaddress.IPv4Address:
        """This host's address as the machines see it (what the address-echo service answers)."""

    @property
    def echo_url(self) -> str | None:
        """URL of the address-echo service (GET → the caller's address as plain text)."""

    @property
    def pip_index_url(self) -> str | None:
        """URL of a PyPI mirror the machines can use (PEP 503 simple index, plain HTTP), or None."""

    @property
    def python_downloads_json_url(self) -> str | None:
        """URL of uv's list of managed Pythons the machines can fetch (plain HTTP), or None."""

    def api_socket(self) -> socket.socket | None:
        """A listening socket on the machines' side of the network for the emulator's API,
        like api.hetzner.cloud is reachable from real servers (a node's reaper needs it), or
        None when machines cannot reach the API."""
        return None

    @property
    def api_url(self) -> str | None:
        """The API endpoint as machines reach it through `api_socket` (…/v1), or None."""
        return None

    @property
    def outside_netns(self) -> str | None:
        """Path of a network namespace that is another host on the public network, not this
        client: tests use it to prove that firewalls block everyone else."""

    def set_exit_callback(self, callback: MachineExitCallback) -> None: ...

    async def start(self) -> None:
        """Create the lab (namespaces, bridges, uplink, echo service). Idempotent."""

    async def stop(self) -> None:
        """Destroy every machine and the lab; leave no process, mount, namespace or link."""

    # -- images -------------------------------------------------------------------------------
    async def prepare_images(self) -> None:
        """Build or load the base image (cached across runs). May take a minute the first time."""

    def register_system_image(self, image_id: int) -> None:
        """Make `image_id` (a catalog system image) boot the base image."""

    async def snapshot(self, server_id: int, image_id: int) -> None:
        """Save the server's disk as image `image_id`; later servers can boot from it."""

    async def delete_image(self, image_id: int) -> None: ...

    # -- machines -----------------------------------------------------------------------------
    async def create(self, spec: MachineSpec) -> None:
        """Prepare disk, seed and network namespace; does not boot."""

    async def power_on(self, server_id: int) -> None:
        """Boot the machine (returns once the machine process runs, not when SSH answers)."""

    async def power_off(self, server_id: int) -> None:
        """Pull the plug: the machine stops at once."""

    async def shutdown(self, server_id: int, timeout: float) -> None:
        """Ask the guest to shut down (ACPI-like); pull the plug after `timeout` seconds."""

    async def reboot(self, server_id: int) -> None:
        """Ask the guest to reboot; the machine comes back with the same disk."""

    async def kill(self, server_id: int) -> None:
        """Kill the machine as if its host died (the exit callback fires)."""

    async def destroy(self, server_id: int) -> None:
        """Stop the machine if needed and remove its disk and namespace. Idempotent."""

    def is_running(self, server_id: int) -> bool: ...

    # -- networks and firewalls --------------------------------------------------------------
    async def attach_network(self, server_id: int, attachment: PrivateAttachment) -> None:
        """Plug the server into a private network (also while it runs)."""

    async def detach_network(self, server_id: int, network_id: int) -> None: ...

    async def delete_network(self, network_id: int) -> None:
        """Remove the private network's segment (after all servers left it)."""

    async def set_firewall(self, server_id: int, policy: FirewallPolicy) -> None:
        """Enforce `policy` on the server's public interface (real packet filtering)."""
