"""Hetzner Cloud firewalls as one nftables ruleset for the lab's router.

Why: a Hetzner firewall filters in the cloud's network, outside the server, on its public
interface only. The lab netns plays that network, so the rules live there, in the forward path
to and from each server's veth. Rendering is a pure function (easy to test); applying replaces
the whole table in one `nft -f -` transaction, so there is never a moment without rules.
Unmatched inbound packets are dropped, not rejected, so they time out like on Hetzner.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from scherbelberg.emulator.machines.base import FirewallPolicy, FirewallRule

TABLE = "sbgfw"

_L4_ONLY = {"icmp": "icmp", "esp": "esp", "gre": "gre"}


def _match(rule: FirewallRule) -> str | None:
    """The nft match of one rule, or None when it can never match IPv4 traffic."""
    v4 = [a for a in rule.addresses if isinstance(a, ipaddress.IPv4Network)]
    if not v4:
        return None  # IPv6-only (or empty): nothing of it reaches the IPv4 lab
    key = "saddr" if rule.direction == "in" else "daddr"
    parts: list[str] = []
    if not any(a.prefixlen == 0 for a in v4):
        parts.append(f"ip {key} {{ {', '.join(str(a) for a in v4)} }}")
    if rule.protocol in ("tcp", "udp"):
        if rule.port_range is None:
            parts.append(f"meta l4proto {rule.protocol}")
        else:
            lo, hi = rule.port_range
            ports = str(lo) if lo == hi else f"{lo}-{hi}"
            parts.append(f"{rule.protocol} dport {ports}")
    else:
        parts.append(f"meta l4proto {_L4_ONLY[rule.protocol]}")
    return " ".join(parts)


def _chain(name: str, rules: list[FirewallRule]) -> list[str]:
    lines = [f"\tchain {name} {{", "\t\tct state established,related accept"]
    for rule in rules:
        m = _match(rule)
        if m is not None:
            lines.append(f"\t\t{m} accept")
    lines += ["\t\tdrop", "\t}"]
    return lines


def render_ruleset(policies: Mapping[str, FirewallPolicy]) -> str:
    """The nft script for all servers: `policies` maps each server's lab-side veth name to its
    policy. The script deletes and re-creates the table, so it is applied atomically."""
    body: list[str] = []
    chains: list[str] = []
    for ifname, policy in sorted(policies.items()):
        if not policy.applied:
            continue
        inbound = [r for r in policy.rules if r.direction == "in"]
        outbound = [r for r in policy.rules if r.direction == "out"]
        cin = f"in_{ifname}"
        body.append(f'\t\toifname "{ifname}" jump {cin}')
        chains += _chain(cin, inbound)
        if outbound:
            cout = f"out_{ifname}"
            body.append(f'\t\tiifname "{ifname}" jump {cout}')
            chains += _chain(cout, outbound)
    lines = [
        f"table inet {TABLE}",  # create if missing, so that the delete cannot fail
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        "\tchain forward {",
        "\t\ttype filter hook forward priority 0; policy accept;",
        *body,
        "\t}",
        *chains,
        "}",
    ]
    return "\n".join(lines) + "\n"
