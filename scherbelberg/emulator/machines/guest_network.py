"""What a Hetzner image brings to configure private networks inside the guest (hc-utils' part).

Why: on Hetzner, a private network's NIC reaches the guest without an address; the image's
hc-utils (Debian images) runs a one-shot DHCP client on it after network-online. The machine
images carry the same, so the guest configures its private NICs itself, after boot.

Facts (hetznercloud/hc-utils): udev's `81-hc-network-interfaces.rules` matches a NIC by its MAC
prefix 86:00:00 (`ID_NET_NAME_MAC==enx860000*`) and wants `hc-net-ifup@<name>.service`, which
runs `dhclient -1 -4 -v -pf /run/dhclient.<if>.pid -lf /var/lib/dhcp/dhclient.<if>.leases <if>`
after network-online.target (one try: if no answer comes within dhclient's timeout, 60 s by
default, it gives up and nothing tries again); `hc-net-scan.service` (enabled by its preset)
runs `hc-ifscan` after network-online.target to start the same unit for NICs found at boot.

What differs here, and why: machines are systemd-nspawn containers. nspawn moves the NICs in
before the guest boots, and no udev runs in a container, so there are no device units and no
hotplug events: the boot-time scan (`hc-net-scan.service`) finds every private NIC (by MAC, like
the udev rule) and starts the unit without waiting for it (as udev would have); for a NIC plugged
into a running server the emulator starts the unit inside the guest (`hotplug_command`), and
before unplugging it stops the unit (`unplug_command`: what `BindsTo=` the device does on
Hetzner). The scan lists NICs with `ip link`, not /sys/class/net: in an nspawn machine given a
network namespace, /sys/class/net shows the host's interfaces. hc-utils'
`ConditionPathExists=!/run/dhclient.<if>.pid` (not when ifupdown manages the NIC) is left out:
nothing else manages NICs here, and a NIC plugged in again under the same name must get its
DHCP try. The unit and script are written here, not copied from hc-utils.

The image build calls `install_into(rootfs)` and installs `PACKAGES`; `RECIPE` goes into the
image's recipe hash, so a change here builds new images.
"""

from __future__ import annotations

from pathlib import Path

PACKAGES: tuple[str, ...] = ("isc-dhcp-client",)

MAC_PREFIX = "86:00:00:"  # every private NIC's MAC on Hetzner (hc-utils' udev rule)
IFUP_UNIT = "hc-net-ifup@.service"
SCAN_UNIT = "hc-net-scan.service"
SCAN_SCRIPT = "/usr/sbin/hc-ifscan"

_IFUP = """\
# scherbelberg emulator: what hc-utils' hc-net-ifup@.service does on Hetzner's Debian images:
# one DHCP try on a private network interface after network-online, never retried.
[Unit]
Description=Hetzner Cloud private network interface %i (one DHCP try)
After=network-online.target

[Service]
RemainAfterExit=true
ExecStart=/sbin/dhclient -1 -4 -v -pf /run/dhclient.%i.pid -lf /var/lib/dhcp/dhclient.%i.leases %i
"""

_SCAN_SERVICE = f"""\
# scherbelberg emulator: like hc-utils' hc-net-scan.service, the boot-time scan for private NICs
[Unit]
Description=Find and configure Hetzner Cloud private network interfaces
After=network-online.target

[Service]
Type=oneshot
ExecStart={SCAN_SCRIPT}

[Install]
WantedBy=multi-user.target
"""

_SCAN_SCRIPT = f"""\
#!/bin/sh
# scherbelberg emulator: start hc-net-ifup@<if> for every private NIC (MAC {MAC_PREFIX}..) that
# has no IPv4 address yet, as udev's 81-hc-network-interfaces.rules does on Hetzner.
ip -o link show | while read -r _ name rest; do
  name=${{name%:}}
  name=${{name%@*}}
  case $rest in *" link/ether {MAC_PREFIX}"*) ;; *) continue ;; esac
  [ -z "$(ip -4 -o addr show dev "$name")" ] || continue
  logger -t hc-ifscan "configuring $name"
  systemctl start --no-block "hc-net-ifup@$name.service"
done
"""

# path in the image -> (mode, text)
_FILES: dict[str, tuple[int, str]] = {
    f"/etc/systemd/system/{IFUP_UNIT}": (0o644, _IFUP),
    f"/etc/systemd/system/{SCAN_UNIT}": (0o644, _SCAN_SERVICE),
    SCAN_SCRIPT: (0o755, _SCAN_SCRIPT),
}
_ENABLED = {f"/etc/systemd/system/multi-user.target.wants/{SCAN_UNIT}": f"../{SCAN_UNIT}"}

# Every file this module writes into the image, as text (part of the image recipe hash).
RECIPE = "\0".join(
    [f"{path}:{mode:o}:{text}" for path, (mode, text) in sorted(_FILES.items())]
    + [f"{link}->{target}" for link, target in sorted(_ENABLED.items())]
)


def install_into(rootfs: Path) -> None:
    """Write the guest's private-network helpers into an image's root file system."""
    for path, (mode, text) in _FILES.items():
        dest = rootfs / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        dest.chmod(mode)
    for link, target in _ENABLED.items():
        dest = rootfs / link.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        dest.symlink_to(target)


def hotplug_command(ifname: str) -> list[str]:
    """Run inside a running guest when a private NIC was plugged in (what udev does)."""
    return ["systemctl", "start", "--no-block", f"hc-net-ifup@{ifname}.service"]


def unplug_command(ifname: str) -> list[str]:
    """Run inside a running guest before its private NIC is pulled (`BindsTo=` the device)."""
    return ["systemctl", "stop", f"hc-net-ifup@{ifname}.service"]
