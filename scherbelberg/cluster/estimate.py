"""The price of a cluster before it exists: `HetznerCluster.estimate(...)`, `create --dry-run`.

The same checks and choices as a real start (token, location, server types that can be
ordered now, image), then `/pricing`; no resource is made and no local state is written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from typing import Any

from ..hetzner import capacity, catalog, pricing
from ..hetzner.session import HetznerSession, resolve_endpoint, resolve_token
from . import settings as settings_module
from .compat import check_worker_count


async def estimate_cluster_async(n_workers: int = 0, **kwargs: Any) -> pricing.Estimate:
    check_worker_count(n_workers, "n_workers")
    token, endpoint = kwargs.pop("token", None), kwargs.pop("endpoint", None)
    known_settings = inspect.signature(settings_module.resolve).parameters
    s = settings_module.resolve(**{k: v for k, v in kwargs.items() if k in known_settings})
    session = HetznerSession(resolve_token(token), resolve_endpoint(endpoint))
    place = await catalog.location(session, s.location)
    known = await capacity.load(session)
    choice = capacity.choose(known, [s.scheduler_wish, s.worker_wish], place.name)
    scheduler = known.info(choice.types["scheduler"], choice.location)
    worker = known.info(choice.types["worker"], choice.location)
    await catalog.image(session, s.image_name, scheduler.architecture)  # as a start would
    ipv4 = await pricing.ipv4_price(session, choice.location)
    return pricing.estimate(scheduler, worker, n_workers, choice.location, ipv4)


def estimate_cluster(n_workers: int = 0, **kwargs: Any) -> pricing.Estimate:
    """Synchronous, also where an event loop runs already (a notebook): then in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(estimate_cluster_async(n_workers, **kwargs))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, estimate_cluster_async(n_workers, **kwargs)).result()
