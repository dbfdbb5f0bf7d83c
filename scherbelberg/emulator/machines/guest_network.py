"""What a Hetzner image brings to configure private networks inside the guest (hc-utils' part).

Why: on Hetzner, a private network's NIC reaches the guest without an address; the image's
hc-utils (Debian images) runs a one-shot DHCP client on it after network-online. The machine
images carry the same, so the guest configures its private NICs itself, after boot.

The image build calls `install_into(rootfs)` and installs `PACKAGES`; `RECIPE` goes into the
image's recipe hash, so a change here builds new images.
"""

from __future__ import annotations

from pathlib import Path

PACKAGES: tuple[str, ...] = ("isc-dhcp-client",)

# Every file this module writes into the image, as text (part of the image recipe hash).
RECIPE = ""


def install_into(rootfs: Path) -> None:
    """Write the guest's private-network helpers into an image's root file system."""
