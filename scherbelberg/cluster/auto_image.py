"""`image: auto` with environment images: boot from one made earlier, else make one for next time.

Why: installing the environment dominates a node's start (30-50 s on the local Hetzner,
minutes for many nodes), and every worker `adapt()` adds pays it again. A snapshot of an
installed node lets nodes skip it, and users should not need to know the word "snapshot". So
a cluster with the default image looks for an environment image made for its environment
(`env_images.env_hash`: Python, pins, extras, method, architecture, base image) and boots from the
newest one. If there is none, its nodes install as before, and an image is made in the
background on a small server of its own: the cluster in hand neither waits for it nor fails
with it, and its workers added later boot from it once it is ready. `close()` waits for a build
still running (with a deadline), so the next cluster finds the image; a rolled-back start
cancels it, and the build's own clean-up (or the cluster's label sweep) removes what it made.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from ..bootstrap.env import EnvSpec
from ..errors import HetznerError
from ..hetzner import lookups
from . import env_images, lease

if TYPE_CHECKING:
    from ..hetzner.capacity import Catalog
    from ..hetzner.session import HetznerSession
    from .settings import Settings

log = logging.getLogger(__name__)

# An older image of the same environment that some cluster booted from within this long may
# still be what that cluster scales up from: the clean-up after a build leaves it alone.
IN_USE_SECONDS = 24 * 3600.0


class ImageUser(Protocol):
    """What environment images need of their cluster (`HetznerCluster` is one)."""

    name: str
    settings: Settings
    session: HetznerSession
    images: dict[str, lookups.ImageInfo]  # role -> the image its nodes boot from
    capacity: Catalog

    def image_for(self, role: str) -> lookups.ImageInfo: ...
    def say(self, message: str) -> None: ...


class AutoImage:
    """The environment images of one cluster: which it boots from, which it is making."""

    def __init__(self, cluster: ImageUser) -> None:
        self.cluster = cluster
        self.used: dict[str, env_images.EnvImage] = {}  # architecture -> image nodes boot from
        self.making: asyncio.Task[None] | None = None
        self._marking: asyncio.Future[None] | None = None
        # False where no process stays to drive a build (`create --no-wait` leaves at once: a
        # builder it started would bill, unfinished, until the cluster is destroyed)
        self.may_make = True

    @property
    def enabled(self) -> bool:
        """Environment images are looked for: the image is `auto` and nothing preinstalled."""
        s = self.cluster.settings
        return s.image_auto and not s.env.preinstalled

    def env_for(self, role: str) -> EnvSpec:
        """The environment a node of `role` gets: only checked when it boots from an image."""
        env = self.cluster.settings.env
        architecture = self.cluster.image_for(role).architecture
        return replace(env, preinstalled=True) if architecture in self.used else env

    def _architectures(self) -> dict[str, str]:
        """architecture -> base image name, for the cluster's roles."""
        return {i.architecture: i.name for i in self.cluster.images.values()}

    async def choose(self) -> None:
        """At start: boot from the newest environment image of each architecture, if any."""
        if not self.enabled:
            return
        cluster = self.cluster
        for architecture, base in self._architectures().items():
            found = await env_images.find_env_image(
                cluster.session, cluster.settings.env, architecture, base
            )
            if found is not None:
                self._use(found)
                age = _age(time.time() - found.created)
                cluster.say(
                    f"cluster {cluster.name}: booting from environment image {found.id} "
                    f"(made {age} ago on {base})"
                )
                # not awaited: one request the start need not wait for
                self._marking = asyncio.ensure_future(self._mark_used(found))

    def _use(self, image: env_images.EnvImage) -> None:
        """Nodes of this image's architecture made from now on boot from it."""
        self.used[image.architecture] = image
        for role, info in list(self.cluster.images.items()):
            if info.architecture == image.architecture:
                self.cluster.images[role] = lookups.ImageInfo(
                    image.id, f"environment image {image.id}", image.architecture
                )

    async def _mark_used(self, image: env_images.EnvImage) -> None:
        try:
            await env_images.mark_used(self.cluster.session, image)
        except Exception as exc:  # only `image prune` reads it: never a reason to fail
            log.warning("could not mark environment image %s as used: %s", image.id, exc)

    def start_making(self) -> None:
        """In the background: an image for each architecture that has none (unless
        `env_images=False`)."""
        if not (self.enabled and self.cluster.settings.env_images):
            return
        missing = {a: b for a, b in self._architectures().items() if a not in self.used}
        if not missing:
            return
        if not self.may_make:
            self.cluster.say(
                f"cluster {self.cluster.name}: installing; no environment image is made for "
                "next time (a create that waits makes one)"
            )
            return
        self.cluster.say(
            f"cluster {self.cluster.name}: installing; an environment image is being made "
            "for next time"
        )
        self.making = asyncio.ensure_future(self._make(missing))

    async def _make(self, missing: dict[str, str]) -> None:
        cluster, s = self.cluster, self.cluster.settings
        for architecture, base in missing.items():
            try:
                location = str(s.location)
                cheapest = cluster.capacity.orderable_list(location, architecture)
                if not cheapest:
                    raise HetznerError(f"no {architecture} type can be ordered in {location}")
                extra = {k: v for k, v in s.labels.items() if k != lease.LEASE}
                image_id = await env_images.build_env_image(
                    cluster.session,
                    env=s.env,
                    location=location,
                    server_type=cheapest[0],
                    base_image=base,
                    deadline=s.timeouts["bootstrap"],
                    allowed_sources=s.allowed_sources,
                    client_address_url=s.client_address_url,
                    action_deadline=s.timeouts["action"],
                    snapshot_deadline=s.timeouts["snapshot"],
                    extra_labels=extra,
                    owner=cluster.name,
                    progress=lambda message: log.info("%s", message),
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "cluster %s: could not make an environment image (%s); the cluster is "
                    "not affected, the next one installs again",
                    cluster.name,
                    exc,
                )
                continue
            made = await env_images.find_env_image(cluster.session, s.env, architecture, base)
            if made is None or made.id != image_id:
                continue
            self._use(made)
            cluster.say(
                f"cluster {cluster.name}: environment image {image_id} is ready; "
                "workers added from now on boot from it"
            )
            await self._drop_older(made)

    async def _drop_older(self, made: env_images.EnvImage) -> None:
        """Older images of the same environment are not needed any more (snapshots are billed
        per GB and month), unless a cluster booted from one lately."""
        session = self.cluster.session
        with suppress(Exception):
            for image in await env_images.list_env_images(session):
                stale = time.time() - image.last_used > IN_USE_SECONDS
                if image.env_hash == made.env_hash and image.id != made.id and stale:
                    await env_images.delete_env_image(session, image.id)
                    log.info("deleted environment image %s (replaced by %s)", image.id, made.id)

    async def finish(self, wait: bool) -> None:
        """At close: wait for an image being made (with a deadline), or cancel it."""
        task, self.making = self.making, None
        if task is None or task.done():
            return
        if wait:
            s = self.cluster.settings
            deadline = s.timeouts["bootstrap"] + 2 * s.timeouts["action"]
            self.cluster.say(
                f"cluster {self.cluster.name}: waiting for the environment image being made "
                f"for next time (at most {deadline:.0f} s)"
            )
            with suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), deadline)
                return
        task.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await task


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
