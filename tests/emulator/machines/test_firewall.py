"""The nftables rendering of Hetzner firewall policies (pure), plus a kernel syntax check."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess

import pytest

from scherbelberg.emulator.machines.base import FirewallPolicy, FirewallRule
from scherbelberg.emulator.machines.nft_rules import render_ruleset

LOAD_TWICE = 'printf "%s" "$1" | nft -f - && printf "%s" "$1" | nft -f - && nft list ruleset'


def chain_body(text: str, name: str) -> str:
    return text.split(f"chain {name} {{")[1].split("\n\t}")[0]


def rule(direction: str, protocol: str, ports: tuple[int, int] | None, *cidrs: str) -> FirewallRule:
    return FirewallRule(
        direction,  # type: ignore[arg-type]
        protocol,  # type: ignore[arg-type]
        ports,
        tuple(ipaddress.ip_network(c) for c in cidrs),
    )


def test_empty_ruleset_replaces_table_atomically() -> None:
    text = render_ruleset({})
    lines = text.splitlines()
    assert lines[:3] == ["table inet sbgfw", "delete table inet sbgfw", "table inet sbgfw {"]
    assert "type filter hook forward priority 0; policy accept;" in text
    assert "jump" not in text


def test_not_applied_means_no_filtering() -> None:
    text = render_ruleset(
        {"sbg0p1": FirewallPolicy(applied=False, rules=(rule("in", "tcp", (22, 22), "0.0.0.0/0"),))}
    )
    assert "sbg0p1" not in text


def test_applied_without_rules_drops_all_inbound_but_not_outbound() -> None:
    text = render_ruleset({"sbg0p1": FirewallPolicy(applied=True)})
    assert 'oifname "sbg0p1" jump in_sbg0p1' in text
    assert "iifname" not in text
    chain = chain_body(text, "in_sbg0p1")
    assert [line.strip() for line in chain.strip().splitlines()] == [
        "ct state established,related accept",
        "drop",
    ]


def test_inbound_rules() -> None:
    policy = FirewallPolicy(
        applied=True,
        rules=(
            rule("in", "tcp", (22, 22), "198.18.0.1/32"),
            rule("in", "tcp", (8000, 8999), "10.0.0.0/8", "192.0.2.0/24"),
            rule("in", "udp", None, "0.0.0.0/0", "::/0"),
            rule("in", "icmp", None, "0.0.0.0/0"),
            rule("in", "esp", None, "0.0.0.0/0"),
            rule("in", "gre", None, "203.0.113.0/24"),
        ),
    )
    text = render_ruleset({"sbg3p42": policy})
    assert "ip saddr { 198.18.0.1/32 } tcp dport 22 accept" in text
    assert "ip saddr { 10.0.0.0/8, 192.0.2.0/24 } tcp dport 8000-8999 accept" in text
    # 0.0.0.0/0 means any source: no address match at all
    assert "\t\tmeta l4proto udp accept" in text
    assert "\t\tmeta l4proto icmp accept" in text
    assert "\t\tmeta l4proto esp accept" in text
    assert "ip saddr { 203.0.113.0/24 } meta l4proto gre accept" in text
    chain = text.split("chain in_sbg3p42 {")[1]
    assert chain.index("ct state established,related accept") < chain.index("tcp dport 22")
    assert chain.index("gre accept") < chain.index("drop")


def test_ipv6_only_rules_are_skipped() -> None:
    policy = FirewallPolicy(applied=True, rules=(rule("in", "tcp", (22, 22), "2001:db8::/32"),))
    text = render_ruleset({"sbg0p1": policy})
    assert "dport 22" not in text
    assert "2001:db8" not in text


def test_outbound_rules_restrict_outbound() -> None:
    policy = FirewallPolicy(
        applied=True,
        rules=(
            rule("in", "tcp", (22, 22), "0.0.0.0/0"),
            rule("out", "tcp", (443, 443), "198.18.0.253/32"),
        ),
    )
    text = render_ruleset({"sbg0p7": policy})
    assert 'iifname "sbg0p7" jump out_sbg0p7' in text
    out = chain_body(text, "out_sbg0p7")
    assert "ip daddr { 198.18.0.253/32 } tcp dport 443 accept" in out
    assert out.strip().splitlines()[-1].strip() == "drop"
    assert "dport 22" not in out


def test_several_servers_sorted_and_separate() -> None:
    text = render_ruleset(
        {
            "sbg0p2": FirewallPolicy(
                applied=True, rules=(rule("in", "tcp", (80, 80), "0.0.0.0/0"),)
            ),
            "sbg0p1": FirewallPolicy(applied=True),
        }
    )
    assert text.index("jump in_sbg0p1") < text.index("jump in_sbg0p2")
    assert "dport 80" not in chain_body(text, "in_sbg0p1")


@pytest.mark.machines
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("unshare") is None,
    reason="needs root and nft",
)
def test_kernel_accepts_the_ruleset() -> None:
    """nft itself parses and loads the script, twice (the second time replacing the table),
    in a throwaway network namespace."""
    policy = FirewallPolicy(
        applied=True,
        rules=(
            rule("in", "tcp", (22, 22), "198.18.0.1/32"),
            rule("in", "udp", (1000, 2000), "10.0.0.0/8", "2001:db8::/32"),
            rule("in", "icmp", None, "0.0.0.0/0"),
            rule("in", "esp", None, "0.0.0.0/0"),
            rule("in", "gre", None, "0.0.0.0/0"),
            rule("out", "tcp", None, "0.0.0.0/0"),
        ),
    )
    script = render_ruleset({"sbg0p1": policy, "sbg0p2": FirewallPolicy(applied=True)})
    # Loaded twice in one fresh namespace: first on an empty kernel, then replacing the table.
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", LOAD_TWICE, "sh", script],
        text=True,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("table inet sbgfw") == 1
    assert 'oifname "sbg0p1" jump in_sbg0p1' in done.stdout
