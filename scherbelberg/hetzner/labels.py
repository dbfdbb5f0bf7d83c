"""Labels on every resource, so a cluster can be found and deleted even without local state."""

from __future__ import annotations

PREFIX = "scherbelberg"
CLUSTER = f"{PREFIX}/cluster"
ROLE = f"{PREFIX}/role"
MANAGED = f"{PREFIX}/managed"  # on everything scherbelberg made, for `cleanup`


def for_resource(cluster: str, role: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**(extra or {}), MANAGED: "true", CLUSTER: cluster, ROLE: role}


def cluster_selector(cluster: str) -> str:
    return f"{CLUSTER}={cluster}"


def role_selector(cluster: str, role: str) -> str:
    return f"{CLUSTER}={cluster},{ROLE}={role}"
