"""A cluster's settings: constructor arguments over the `scherbelberg` dask config, resolved and
checked once, so the rest of the code reads plain attributes."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from .. import config
from ..bootstrap.env import EnvSpec, client_env_spec
from ..hetzner.catalog import ServerTypeInfo
from ..hetzner.errors import ConfigError


@dataclass
class Settings:
    location: str
    scheduler_type_name: str
    worker_type_name: str
    image_name: str
    env: EnvSpec
    network_cidr: str
    allowed_sources: list[str] | None
    client_address_url: str
    labels: dict[str, str]
    scheduler_port: int
    dashboard_port: int
    timeouts: dict[str, float]
    worker_processes: int
    nthreads_override: int | None
    memory_override: str | None
    # filled by the catalog checks
    scheduler_type: ServerTypeInfo = field(init=False)
    worker_type: ServerTypeInfo = field(init=False)

    @property
    def worker_nthreads(self) -> int:
        if self.nthreads_override:
            return self.nthreads_override
        return max(1, self.worker_type.cores // self.worker_processes)

    @property
    def worker_memory(self) -> str:
        if self.memory_override:
            return self.memory_override
        # leave a little for the OS, as on any VM of that size
        return f"{self.worker_type.memory_gb * 0.9 / self.worker_processes:.2f}GB"

    @property
    def hourly_price(self) -> float | None:
        """Gross EUR per hour for the scheduler and one worker (None if unknown)."""
        prices = (self.scheduler_type.price_hourly, self.worker_type.price_hourly)
        return None if None in prices else float(sum(p or 0.0 for p in prices))

    def as_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "scheduler_server_type": self.scheduler_type_name,
            "worker_server_type": self.worker_type_name,
            "image": self.image_name,
            "env_method": self.env.method,
            "network_cidr": self.network_cidr,
            "scheduler_port": self.scheduler_port,
            "dashboard_port": self.dashboard_port,
            "worker_processes": self.worker_processes,
            # not secret, and needed by whoever scales this cluster later (from_existing)
            "pip_index_url": self.env.index_url,
            "client_address_url": self.client_address_url,
            "extra_packages": list(self.env.extra_packages),
        }


def resolve(
    *,
    location: str | None = None,
    scheduler_server_type: str | None = None,
    worker_server_type: str | None = None,
    image: str | None = None,
    env_method: str | None = None,
    extra_packages: list[str] | tuple[str, ...] | None = None,
    preinstalled: bool | None = None,
    pip_index_url: str | None = None,
    network_cidr: str | None = None,
    allowed_sources: list[str] | None = None,
    client_address_url: str | None = None,
    labels: dict[str, str] | None = None,
    worker_nthreads: int | None = None,
    worker_memory: str | None = None,
    worker_processes: int | None = None,
    timeouts: dict[str, float] | None = None,
) -> Settings:
    method = config.get("env.method", env_method)
    if method not in ("pip", "conda"):
        raise ConfigError(f"env method must be pip or conda, not {method!r}")
    cidr = str(config.get("network-cidr", network_cidr))
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError:
        raise ConfigError(f"network CIDR {cidr!r} is not an IPv4 network") from None
    if not network.is_private or network.prefixlen > 20:
        raise ConfigError(f"network CIDR {cidr} must be a private range of /20 or larger")
    processes = int(config.get("worker.processes", worker_processes))
    if processes < 1:
        raise ConfigError("worker processes per server must be at least 1")
    merged_timeouts = {**config.get("timeouts"), **(timeouts or {})}
    return Settings(
        location=str(config.get("location", location)),
        scheduler_type_name=str(config.get("scheduler-server-type", scheduler_server_type)),
        worker_type_name=str(config.get("worker-server-type", worker_server_type)),
        image_name=str(config.get("image", image)),
        env=client_env_spec(
            method=method,
            extra_packages=tuple(config.get("env.extra-packages", extra_packages) or ()),
            index_url=config.get("pip-index-url", pip_index_url),
            preinstalled=bool(config.get("env.preinstalled", preinstalled)),
        ),
        network_cidr=cidr,
        allowed_sources=config.get("allowed-sources", allowed_sources),
        client_address_url=str(config.get("client-address-url", client_address_url)),
        labels={**(config.get("labels") or {}), **(labels or {})},
        scheduler_port=int(config.get("scheduler-port")),
        dashboard_port=int(config.get("dashboard-port")),
        timeouts={k: float(v) for k, v in merged_timeouts.items()},
        worker_processes=processes,
        nthreads_override=config.get("worker.nthreads", worker_nthreads),
        memory_override=config.get("worker.memory-limit", worker_memory),
    )
