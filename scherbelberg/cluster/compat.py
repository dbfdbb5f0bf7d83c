"""dask-cloudprovider's `HetznerCluster` arguments, taken by scherbelberg's.

Why: code written for dask-cloudprovider should move over by changing one import. Each of its
argument names (its HetznerCluster's, the VMCluster's it passes on, SpecCluster's) either works
with the same meaning here, or fails at once — before any API request — with one line that
names scherbelberg's way to do it. An unknown name that is close to one of scherbelberg's own
gets a "did you mean". The table is in docs/cluster.md ("Coming from dask-cloudprovider").
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import dask.config

from ..config import Sourced
from ..errors import ArgumentError, ConfigError
from ..hetzner.session import resolve_token

F = TypeVar("F", bound=Callable[..., None])

# SpecCluster's own arguments that reach it unchanged (same meaning as everywhere in Dask)
PASSED_ON = ("silence_logs", "scheduler_sync_interval", "shutdown_scheduler")
NANNY = ("dask.distributed.Nanny", "distributed.Nanny", "distributed.nanny.Nanny")
NO_DOCKER = (
    "scherbelberg runs no Docker: nodes get the client's Python environment; "
    "use extra_packages=[...] or image=<snapshot id>, preinstalled=True"
)
WORKER_OPTIONS = {"nthreads": "worker_nthreads", "memory_limit": "worker_memory"}


def takes_dask_cloudprovider_arguments(init: F) -> F:
    """Wrap `HetznerCluster.__init__`: translate or reject dask-cloudprovider's names and
    check `n_workers`, before the cluster object does anything."""
    parameters = inspect.signature(init).parameters
    own = [n for n, p in parameters.items() if n != "self" and p.kind is not p.VAR_KEYWORD]

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs = translate(kwargs, own)
        n_workers = args[0] if args else kwargs.get("n_workers", 0)
        check_worker_count(n_workers, "n_workers")
        init(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_worker_count(n: object, where: str) -> None:
    """Worker servers: a whole number, 0 or more (as the CLI's `--workers` and `scale`)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"{where} must be a whole number of worker servers, 0 or more; not {n!r}")


def translate(kwargs: dict[str, Any], own: list[str]) -> dict[str, Any]:
    """scherbelberg's keyword arguments for `kwargs`, which may use dask-cloudprovider's names;
    an ArgumentError (one line, naming the equivalent) for what has none."""
    given = dict(kwargs)
    out = {k: v for k, v in given.items() if k in own or k in PASSED_ON}
    foreign = {k: v for k, v in given.items() if k not in out}
    for name, value in foreign.items():
        rule = RULES.get(name)
        if rule is None:
            raise ArgumentError(_unexpected(name, own))
        translated = rule(value)
        for key, new in translated.items():
            if out.get(key) is not None:
                sets = " and ".join(f"{k}=" for k in translated)
                raise ArgumentError(
                    f"HetznerCluster({name}=…, {key}=…): dask-cloudprovider's {name}= sets "
                    f"{sets}; pass either {name}= or {key}="
                )
            out[key] = new
    if out.get("token") is None:
        legacy = _cloudprovider_token()
        if legacy:
            out["token"] = legacy
    return out


def _unexpected(name: str, own: list[str]) -> str:
    close = difflib.get_close_matches(name, [*own, *PASSED_ON, *RULES], n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]}=?" if close else " (its arguments: docs/cluster.md)"
    return f"HetznerCluster() got an unexpected keyword argument {name!r}{hint}"


def _refuse(name: str, value: Any, why: str) -> ArgumentError:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return ArgumentError(f"HetznerCluster({name}={shown}): {why}")


# -- one rule per dask-cloudprovider name: the scherbelberg arguments it becomes -------------
def _server_type(value: Any) -> dict[str, Any]:
    """dask-cloudprovider has one type for all servers."""
    if not isinstance(value, str) or not value:
        raise _refuse("server_type", value, "a server type name, e.g. 'cx23'")
    sourced = Sourced(value, source="argument server_type=")
    return {"scheduler_server_type": sourced, "worker_server_type": sourced}


def _env_vars(value: Any) -> dict[str, Any]:
    """dask's Docker images read EXTRA_PIP_PACKAGES; that is what extra_packages does."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise _refuse("env_vars", value, "a dict of environment variables")
    rest = {k: v for k, v in value.items() if k != "EXTRA_PIP_PACKAGES"}
    if rest:
        raise _refuse(
            "env_vars",
            rest,
            "scherbelberg sets no environment variables on the nodes (EXTRA_PIP_PACKAGES "
            "becomes extra_packages=); for the workers use client.register_plugin("
            "distributed.diagnostics.plugin.Environ({...}))",
        )
    packages = str(value["EXTRA_PIP_PACKAGES"]).split()
    return {"extra_packages": packages} if packages else {}


def _worker_class(value: Any, name: str = "worker_class") -> dict[str, Any]:
    if value is None or value in NANNY:
        return {}  # `dask worker` runs each worker under a nanny
    raise _refuse(
        name,
        value,
        "scherbelberg runs `dask worker` (a Nanny and its Worker); other classes are not "
        "supported; size workers with worker_nthreads=, worker_memory=, worker_processes=",
    )


def _worker_module(value: Any) -> dict[str, Any]:
    if value is None or value == "distributed.cli.dask_worker":
        return {}
    return _worker_class(value, "worker_module")


def _worker_options(value: Any) -> dict[str, Any]:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise _refuse("worker_options", value, "a dict of Worker arguments")
    unknown = [k for k in value if k not in WORKER_OPTIONS]
    if unknown:
        raise _refuse(
            "worker_options",
            {k: value[k] for k in unknown},
            "scherbelberg passes only nthreads (worker_nthreads=) and memory_limit "
            "(worker_memory=) to the workers",
        )
    out: dict[str, Any] = {}
    if value.get("nthreads") is not None:
        out["worker_nthreads"] = value["nthreads"]
    if value.get("memory_limit") is not None:
        out["worker_memory"] = str(value["memory_limit"])
    return out


def _scheduler_options(value: Any) -> dict[str, Any]:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise _refuse("scheduler_options", value, "a dict of Scheduler arguments")
    why = {
        "port": "the scheduler's port is the dask config scherbelberg.scheduler-port",
        "dashboard_address": "the dashboard is reached through cluster.dashboard_link (an SSH "
        "tunnel); its port on the node is the dask config scherbelberg.dashboard-port",
    }
    for key in value:
        if key != "idle_timeout":
            reason = why.get(key, "scherbelberg passes no options to the scheduler")
            raise _refuse("scheduler_options", {key: value[key]}, reason)
    # Dask's stops the scheduler when idle; scherbelberg's deletes the whole cluster
    return {"idle_timeout": value["idle_timeout"]}


def _security(value: Any) -> dict[str, Any]:
    if value is True:
        return {}  # scherbelberg always makes the cluster's own CA and certificates
    if not value:
        raise _refuse(
            "security",
            value,
            "scherbelberg always uses TLS with mutual authentication; it cannot be turned off",
        )
    raise _refuse(
        "security",
        value,
        "scherbelberg makes each cluster's own CA and certificates (in its state directory); "
        "use security=True or leave it out",
    )


def _refused_unless(
    name: str, why: str, allowed: Callable[[Any], bool] = lambda value: not value
) -> Callable[[Any], dict[str, Any]]:
    """A name scherbelberg has no use for: its default (`allowed`) is fine and becomes
    nothing; any other value is an ArgumentError that says `why`."""

    def rule(value: Any) -> dict[str, Any]:
        if allowed(value):
            return {}
        raise _refuse(name, value, why)

    return rule


SPECS_ARE_OURS = (
    "scherbelberg makes the scheduler and worker specs itself; "
    "use n_workers=, scheduler_server_type= and worker_server_type="
)
RULES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "server_type": _server_type,
    "bootstrap": _refused_unless(
        "bootstrap",
        "scherbelberg always installs the nodes' environment; for an image that holds it "
        "already, use image=<snapshot id>, preinstalled=True",
        allowed=lambda value: value is None or value is True,
    ),
    "docker_image": _refused_unless("docker_image", NO_DOCKER, lambda value: value is None),
    "docker_args": _refused_unless("docker_args", NO_DOCKER),
    "extra_bootstrap": _refused_unless(
        "extra_bootstrap",
        "scherbelberg runs no extra commands on the nodes; Python packages: "
        "extra_packages=[...]; anything else: a snapshot of your own as image=<snapshot id>",
    ),
    "env_vars": _env_vars,
    "worker_class": _worker_class,
    "worker_module": _worker_module,
    "worker_options": _worker_options,
    "scheduler_options": _scheduler_options,
    "security": _security,
    "protocol": _refused_unless(
        "protocol",
        "scherbelberg speaks only TLS (protocol='tls')",
        allowed=lambda value: value is None or value == "tls",
    ),
    "debug": _refused_unless(
        "debug",
        "scherbelberg reports through logging: logging.basicConfig(level='DEBUG'); "
        "a node's bootstrap log: `scherbelberg logs NAME`",
    ),
    "auto_shutdown": _refused_unless(
        "auto_shutdown",
        "close() deletes the servers (a stopped Hetzner server is still billed); for a "
        "cluster left running use ttl= or idle_timeout=",
    ),
    "workers": _refused_unless("workers", SPECS_ARE_OURS, lambda value: False),
    "scheduler": _refused_unless("scheduler", SPECS_ARE_OURS, lambda value: False),
    "worker": _refused_unless("worker", SPECS_ARE_OURS, lambda value: False),
}


def _cloudprovider_token() -> str | None:
    """dask-cloudprovider reads its token from cloudprovider.hetzner.token; used here only
    when none of scherbelberg's sources (token=, HETZNER, HCLOUD_TOKEN, config) has one."""
    try:
        resolve_token(None)
        return None
    except ConfigError:
        value = dask.config.get("cloudprovider.hetzner.token", None)
        return str(value) if value else None
