"""The host-wide names of lab instance k's objects: namespaces, veths, lock files, run dirs.

Both sides need them: the lab makes these objects (lab.py), and the clean-up finds what a
crashed instance left behind by the same names (cleanup.py).
"""

from __future__ import annotations

from pathlib import Path

PREFIX = "sbg"
LOCK_DIR = Path("/run/scherbelberg")
NETNS_DIR = Path("/run/netns")


def lab_netns(k: int) -> str:
    return f"{PREFIX}{k}-lab"


def outside_netns(k: int) -> str:
    return f"{PREFIX}{k}-out"


def server_netns(k: int, server_id: int) -> str:
    return f"{PREFIX}{k}-s{server_id}"


def host_veth(k: int) -> str:
    return f"{PREFIX}{k}h"


def lock_path(k: int, lock_dir: Path = LOCK_DIR) -> Path:
    return lock_dir / f"lab-{k}.lock"


def run_dir(k: int) -> Path:
    """Runtime files of instance k's private networks (dnsmasq's hosts and options)."""
    return LOCK_DIR / f"{PREFIX}{k}"


def network_netns(k: int, network_id: int) -> str:
    return f"{PREFIX}{k}-n{network_id}"
