"""How long things take on the local Hetzner.

`instant` (the default) makes every action finish as soon as the machine work behind it is done,
so tests spend their time on real machines, not on sleeps. `realistic` stretches actions and
boots to the durations a user sees on the real Hetzner Cloud, so that benchmarks of the cluster
manager measure a control plane under the delays it will really meet. The figures are estimates
from Hetzner's documented behaviour and public reports (see docs/emulator.md), not measurements.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LatencyProfile:
    name: str
    api_request: float = 0.0  # added to every API response (round trip to Falkenstein)
    create_server: float = 0.0  # `create_server` action: allocate the VM and its disk
    start_server: float = 0.0  # `start_server` / `poweron` action until status `running`
    guest_boot: float = 0.0  # from `running` until the machine itself starts booting
    stop_server: float = 0.0  # `poweroff` / `shutdown`
    delete_server: float = 0.0
    reboot_server: float = 0.0
    create_image: float = 0.0  # snapshot of a small disk
    network_action: float = 0.0  # attach/detach/add_subnet
    firewall_action: float = 0.0  # apply/remove/set_rules
    # after a server is deleted, its firewall, network and placement group answer 422
    # resource_in_use for this long ("a few seconds": terraform-provider-hcloud PR #401,
    # hetzner.hcloud#112, hetzner-k3s#625 retry it); see hetzner-reality.md
    release_delay: float = 0.0

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


INSTANT = LatencyProfile(name="instant")

REALISTIC = LatencyProfile(
    name="realistic",
    api_request=0.08,
    create_server=7.0,
    start_server=3.0,
    guest_boot=6.0,
    stop_server=3.0,
    delete_server=2.0,
    reboot_server=5.0,
    create_image=15.0,
    network_action=1.0,
    firewall_action=1.0,
    release_delay=5.0,  # "a few seconds"; longer than Hetzner's clients' first retry (1-2 s)
)

PROFILES = {profile.name: profile for profile in (INSTANT, REALISTIC)}
