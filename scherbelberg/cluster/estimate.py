"""The price of a cluster before it exists: `HetznerCluster.estimate(...)`, `create --dry-run`.

The same checks and choices as a real start — arguments (dask-cloudprovider's names too), the
cluster name, settings, TTL/idle timeout/reaper, token, location, server types that can be
ordered now, the image for each architecture — then `/pricing`. No resource is made and no
local state is written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Collection
from typing import Any

from .. import config
from ..errors import ConfigError
from ..hetzner import capacity, lookups, pricing
from ..hetzner.session import HetznerSession, resolve_endpoint, resolve_token
from . import compat, lifetime
from . import settings as settings_module
from .state import ClusterState, validate_cluster_name


async def estimate_cluster_async(
    n_workers: int, arguments: Collection[str], **kwargs: Any
) -> pricing.Estimate:
    """`arguments`: the cluster's own keyword names (a misspelt one fails here as there)."""
    compat.check_worker_count(n_workers, "n_workers")
    kwargs = compat.translate(kwargs, list(arguments))
    name = kwargs.get("name")
    if name is not None and validate_cluster_name(name) in ClusterState.list_names():
        raise ConfigError(f"a cluster named {name!r} exists already (attach with from_existing)")
    known_settings = inspect.signature(settings_module.resolve).parameters
    s = settings_module.resolve(**{k: v for k, v in kwargs.items() if k in known_settings})
    lifetime.resolve(kwargs.get("ttl"), kwargs.get("idle_timeout"), kwargs.get("reaper"))
    lifetime.parse_duration(config.get("creation-lease"), "creation-lease")
    session = HetznerSession(
        resolve_token(kwargs.get("token")), resolve_endpoint(kwargs.get("endpoint"))
    )
    place = await lookups.location(session, s.location)  # the first request proves the token
    known = await capacity.load(session)
    choice = capacity.choose(known, [s.scheduler_wish, s.worker_wish], place.name)
    scheduler = known.info(choice.types["scheduler"], choice.location)
    worker = known.info(choice.types["worker"], choice.location)
    await lookups.images_for(session, s.image_name, {"scheduler": scheduler, "worker": worker})
    ipv4 = await pricing.ipv4_price(session, choice.location)
    return pricing.estimate(scheduler, worker, n_workers, choice.location, ipv4)


def estimate_cluster(n_workers: int, arguments: Collection[str], **kwargs: Any) -> pricing.Estimate:
    """Synchronous, also where an event loop runs already (a notebook): then in a thread."""
    work = estimate_cluster_async(n_workers, arguments, **kwargs)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()
