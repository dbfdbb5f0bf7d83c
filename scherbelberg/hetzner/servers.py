"""A server as the project keeps it: the few fields of Hetzner's server JSON it works with.

Hetzner's JSON is read into a `ServerRecord` here and nowhere else; the record is what the
cluster's nodes hold, what the local state stores (`dataclasses.asdict`) and what `ls` shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import labels


@dataclass
class ServerRecord:
    server_id: int
    name: str
    public_ip: str  # "" while Hetzner has not assigned one (or the server has none)
    private_ip: str | None  # in the cluster's network; None until Hetzner reports it
    role: str = ""  # scheduler / worker / env-image-builder, from the role label

    @classmethod
    def from_api(cls, server: Mapping[str, Any]) -> ServerRecord:
        ipv4 = (server.get("public_net") or {}).get("ipv4") or {}
        private = server.get("private_net") or [{}]
        return cls(
            server_id=int(server["id"]),
            name=str(server["name"]),
            public_ip=str(ipv4.get("ip") or ""),
            private_ip=private[0].get("ip"),
            role=str((server.get("labels") or {}).get(labels.ROLE, "")),
        )
