"""A backend without machines, for API-only runs on hosts that cannot run containers.

Why: the HTTP API and the state model are useful (and testable) on any machine, e.g. for
client tests that only look at JSON. Servers "run" in the model but nothing boots; there is no
lab, so no echo service, no PyPI mirror and no outside host.
"""

from __future__ import annotations

import ipaddress

from scherbelberg.emulator.machines.base import (
    FirewallPolicy,
    MachineBackend,
    MachineExitCallback,
    MachineSpec,
    PrivateAttachment,
)


class NullBackend(MachineBackend):
    """Remembers which servers are "running"; does nothing else (no lab: `api_socket` and
    `api_url` are the protocol's None)."""

    name = "null"

    def __init__(self, public_range: str = "198.18.0.0/24") -> None:
        self._range = ipaddress.IPv4Network(public_range)
        self._specs: dict[int, MachineSpec] = {}
        self._running: set[int] = set()
        self._callback: MachineExitCallback | None = None

    @property
    def public_range(self) -> ipaddress.IPv4Network:
        return self._range

    @property
    def reserved_public(self) -> frozenset[ipaddress.IPv4Address]:
        base = self._range.network_address
        return frozenset(
            {base, self._range.broadcast_address, base + 1, base + 2, base + 253, base + 254}
        )

    @property
    def client_address(self) -> ipaddress.IPv4Address:
        return self._range.network_address + 1

    @property
    def echo_url(self) -> str | None:
        return None

    @property
    def pip_index_url(self) -> str | None:
        return None

    @property
    def python_downloads_json_url(self) -> str | None:
        return None

    @property
    def outside_netns(self) -> str | None:
        return None

    def set_exit_callback(self, callback: MachineExitCallback) -> None:
        self._callback = callback

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self._specs.clear()
        self._running.clear()

    async def prepare_images(self) -> None:
        pass

    async def snapshot(self, server_id: int, image_id: int) -> None:
        pass

    async def delete_image(self, image_id: int) -> None:
        pass

    def register_system_image(self, image_id: int) -> None:
        pass

    async def create(self, spec: MachineSpec) -> None:
        self._specs[spec.server_id] = spec

    async def power_on(self, server_id: int) -> None:
        self._running.add(server_id)

    async def power_off(self, server_id: int) -> None:
        self._running.discard(server_id)

    async def shutdown(self, server_id: int, timeout: float) -> None:
        self._running.discard(server_id)

    async def reboot(self, server_id: int) -> None:
        pass

    async def kill(self, server_id: int) -> None:
        if server_id in self._running:
            self._running.discard(server_id)
            if self._callback is not None:
                self._callback(server_id, -9)

    async def destroy(self, server_id: int) -> None:
        self._running.discard(server_id)
        self._specs.pop(server_id, None)

    def is_running(self, server_id: int) -> bool:
        return server_id in self._running

    async def attach_network(self, server_id: int, attachment: PrivateAttachment) -> None:
        pass

    async def detach_network(self, server_id: int, network_id: int) -> None:
        pass

    async def delete_network(self, network_id: int) -> None:
        pass

    async def set_firewall(self, server_id: int, policy: FirewallPolicy) -> None:
        pass
