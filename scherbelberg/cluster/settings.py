"""A cluster's settings: constructor arguments over the `scherbelberg` dask config, resolved and
checked once, so the rest of the code reads plain attributes.

The string settings the API checks later (location, server types, image) are `config.Sourced`
values: a failed catalog check names the setting and where its value came from."""

from __future__ import annotations

import inspect
import ipaddress
import sys
from dataclasses import dataclass, field
from typing import Any

from .. import config
from ..bootstrap import conda_env
from ..bootstrap.env import EnvSpec, client_env_spec
from ..errors import ConfigError
from ..hetzner.capacity import Requirement, Wish
from ..hetzner.lookups import ServerTypeInfo
from . import system_image


@dataclass
class Settings:
    location: str
    scheduler_wish: Wish  # names in order of preference, or a requirement (capacity.py)
    worker_wish: Wish
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
    # why `image_name` is what it is, when `image: auto` chose it (printed at start)
    image_note: str | None = None
    image_auto: bool = False  # `image: auto`: environment images are looked for (auto_image.py)
    env_images: bool = True  # ... and one is made when there is none
    # where each checked setting came from: "argument location=", "the default; …" (for errors)
    sources: dict[str, str] = field(default_factory=dict)
    # filled by the catalog checks
    scheduler_type: ServerTypeInfo = field(init=False)
    worker_type: ServerTypeInfo = field(init=False)

    @property
    def scheduler_type_name(self) -> str:
        """The chosen type once the catalog was read, else what was asked for."""
        chosen = getattr(self, "scheduler_type", None)
        return chosen.name if chosen is not None else _wished(self.scheduler_wish)

    @property
    def worker_type_name(self) -> str:
        chosen = getattr(self, "worker_type", None)
        return chosen.name if chosen is not None else _wished(self.worker_wish)

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

    def as_dict(self) -> dict[str, Any]:
        """What a re-attach needs again (`resolve_again`): keys are `resolve`'s argument names
        (and the ports, which are fixed)."""
        return {
            "location": str(self.location),
            "scheduler_server_type": str(self.scheduler_type_name),
            "worker_server_type": str(self.worker_type_name),
            "image": str(self.image_name),
            "image_auto": self.image_auto,  # chosen by `auto`: environment images are looked for
            "env_method": self.env.method,
            "network_cidr": self.network_cidr,
            "scheduler_port": self.scheduler_port,
            "dashboard_port": self.dashboard_port,
            "worker_processes": self.worker_processes,
            # not secret, and needed by whoever scales this cluster later (from_existing)
            "pip_index_url": self.env.index_url,
            "python_downloads_json_url": self.env.python_downloads_json_url,
            "client_address_url": self.client_address_url,
            "extra_packages": list(self.env.extra_packages),
        }


def resolve_again(arguments: dict[str, Any], stored: dict[str, Any]) -> Settings:
    """`resolve` for a re-attached cluster: each argument not given again is taken from the
    settings it was made with (`Settings.as_dict`, kept in its local state)."""
    taken = inspect.signature(resolve).parameters
    settings = resolve(
        **{
            **arguments,
            **{k: v for k, v in stored.items() if k in taken and not arguments.get(k)},
        }
    )
    if not arguments.get("image") and stored.get("image_auto"):
        # the stored name was `auto`'s choice: the workers added now also look for
        # environment images (auto_image.py), as the first ones did
        settings.image_auto = True
    return settings


def resolve(
    *,
    location: str | None = None,
    scheduler_server_type: str | None = None,
    worker_server_type: str | None = None,
    image: str | None = None,
    env_method: str | None = None,
    extra_packages: list[str] | tuple[str, ...] | None = None,
    preinstalled: bool | None = None,
    env_images: bool | None = None,
    pip_index_url: str | None = None,
    python_downloads_json_url: str | None = None,
    network_cidr: str | None = None,
    allowed_sources: list[str] | None = None,
    client_address_url: str | None = None,
    labels: dict[str, str] | None = None,
    worker_nthreads: int | None = None,
    worker_memory: str | None = None,
    worker_processes: int | None = None,
    timeouts: dict[str, float] | None = None,
) -> Settings:
    """Arguments over the dask config; each error names the setting and its source."""
    sources: dict[str, str] = {}

    def get(key: str, override: Any, argument: str) -> Any:
        sources[key] = config.source(key, override, argument)
        return config.get(key, override)

    def text(key: str, override: Any, argument: str, what: str) -> config.Sourced:
        return config.Sourced(str(get(key, override, argument)), what, sources[key])

    method = get("env.method", env_method, "env_method")
    if method not in ("auto", "pip", "conda"):
        raise ConfigError(
            f"env method must be auto, pip or conda, not {method!r} ({sources['env.method']})"
        )
    if method == "auto":  # a client in a conda environment gets it on the nodes, else pip's
        method = "conda" if conda_env.in_conda() else "pip"
    if method == "conda" and not conda_env.in_conda():
        raise ConfigError(
            f"env method conda reproduces the client's conda environment, but this Python "
            f"({sys.prefix}) is not in one: it has no conda-meta/ ({sources['env.method']})"
        )
    cidr = str(get("network-cidr", network_cidr, "network_cidr"))
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError:
        raise ConfigError(
            f"network CIDR {cidr!r} ({sources['network-cidr']}) is not an IPv4 network"
        ) from None
    if not network.is_private or network.prefixlen > 20:
        raise ConfigError(
            f"network CIDR {cidr} ({sources['network-cidr']}) must be a private range "
            "of /20 or larger"
        )
    processes = _count(
        get("worker.processes", worker_processes, "worker_processes"),
        "worker processes per server",
        sources["worker.processes"],
    )
    nthreads = get("worker.nthreads", worker_nthreads, "worker_nthreads")
    if nthreads is not None:
        nthreads = _count(nthreads, "worker threads", sources["worker.nthreads"])
    merged_timeouts = {**config.get("timeouts"), **(timeouts or {})}
    env = client_env_spec(
        method=method,
        extra_packages=tuple(config.get("env.extra-packages", extra_packages) or ()),
        index_url=config.get("pip-index-url", pip_index_url),
        preinstalled=bool(config.get("env.preinstalled", preinstalled)),
        python_downloads_json_url=config.get(
            "python-downloads-json-url", python_downloads_json_url
        ),
    )
    image_name = text("image", image, "image", "image")
    image_note = None
    if image_name == system_image.AUTO:
        chosen = system_image.choose(env.python)
        image_note = f"image {chosen.name}: {chosen.reason}"
        image_name = config.Sourced(
            chosen.name, "image", f"{image_name.source} (auto: {chosen.reason})"
        )
    return Settings(
        location=text("location", location, "location", "location"),
        scheduler_wish=_wish("scheduler", get, scheduler_server_type, sources),
        worker_wish=_wish("worker", get, worker_server_type, sources),
        image_name=image_name,
        image_note=image_note,
        image_auto=image_note is not None,
        env_images=bool(config.get("env-images", env_images)),
        env=env,
        network_cidr=cidr,
        allowed_sources=config.get("allowed-sources", allowed_sources),
        client_address_url=str(config.get("client-address-url", client_address_url)),
        labels={**(config.get("labels") or {}), **(labels or {})},
        scheduler_port=int(config.get("scheduler-port")),
        dashboard_port=int(config.get("dashboard-port")),
        timeouts={k: float(v) for k, v in merged_timeouts.items()},
        worker_processes=processes,
        nthreads_override=nthreads,
        memory_override=config.get("worker.memory-limit", worker_memory),
        sources=sources,
    )


def _wish(role: str, get: Any, given: Any, sources: dict[str, str]) -> Wish:
    """A role's server type: one name, names in order of preference (a list, or "a,b"), or
    nothing: then `<role>-requirement` (cores, memory, architecture) picks the cheapest type
    that is orderable."""
    key = f"{role}-server-type"
    value = get(key, given, f"{role}_server_type")
    if isinstance(value, str):
        names = [n.strip() for n in value.split(",") if n.strip()]
    elif isinstance(value, list | tuple):
        names = [str(n).strip() for n in value if str(n).strip()]
    else:
        names = []
    what = f"{role} server type"
    source = getattr(given, "source", "") or sources[key]
    wanted = config.get(f"{role}-requirement") or {}
    try:
        requirement = Requirement(
            cores=int(wanted.get("cores", 1)),
            memory_gb=float(wanted.get("memory", 0)),
            architecture=str(wanted.get("architecture", "x86")),
        )
    except (TypeError, ValueError, AttributeError):
        raise ConfigError(
            f"scherbelberg.{role}-requirement must be a mapping of cores, memory and "
            f"architecture, not {wanted!r}"
        ) from None
    if requirement.architecture not in ("x86", "arm"):
        raise ConfigError(f"{role} requirement: architecture must be x86 or arm")
    return Wish(
        role,
        tuple(config.Sourced(n, what, source) for n in names),
        requirement,
        source if names else f"scherbelberg.{role}-requirement",
    )


def _wished(wish: Wish) -> str:
    return ",".join(wish.names) if wish.names else ""


def _count(value: Any, what: str, source: str) -> int:
    """A whole number of at least 1, or a one-line error that says where it came from."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        number = None
    else:
        try:
            number = int(value)
        except ValueError:
            number = None
    if number is None or number < 1:
        raise ConfigError(f"{what} must be a whole number of at least 1, not {value!r} ({source})")
    return number
