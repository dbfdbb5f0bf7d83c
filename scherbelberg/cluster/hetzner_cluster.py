"""`HetznerCluster`: a Dask cluster on Hetzner Cloud, in the style of dask-cloudprovider.

A `VMCluster` (so a `SpecCluster`): the desired workers are plain data in `worker_spec`, and
`HetznerScheduler` / `HetznerWorker` make them real. Around the servers it creates one SSH key,
private network, firewall and spread placement groups, all labelled with the cluster's name so
`close()` (or `scherbelberg destroy`) finds everything even after local state was lost.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import operator
import pickle
import re
import time
import weakref
from contextlib import ExitStack, suppress
from dataclasses import asdict, replace
from typing import Any

from dask_cloudprovider.generic.vmcluster import VMCluster
from distributed.core import Status
from distributed.deploy.cluster import Cluster as DaskCluster
from distributed.deploy.spec import SpecCluster
from distributed.utils import silence_logging_cmgr

from .. import config  # also registers the scherbelberg config defaults
from ..bootstrap import conda_env
from ..bootstrap.env import EnvSpec, for_architecture
from ..errors import ConfigError, HetznerError, ScherbelbergError, VersionMismatch
from ..hetzner import capacity, infra, labels, lookups, pricing
from ..hetzner.servers import ServerRecord
from ..hetzner.session import HetznerSession, resolve_endpoint, resolve_token
from . import exit_guard, healing, lease, lifetime, ssh
from . import settings as settings_module
from .auto_image import AutoImage
from .client_address import client_address
from .compat import check_worker_count, takes_dask_cloudprovider_arguments
from .estimate import estimate_cluster, estimate_cluster_async
from .nodes import HetznerNode, HetznerScheduler, HetznerWorker, NodeCluster
from .state import ClusterState, generate_cluster_name, validate_cluster_name
from .tls import ClusterCA, client_security
from .versions import check as check_versions
from .versions import ignore_harmless_version_warnings

log = logging.getLogger(__name__)
LIFETIME_CHECK_SECONDS = 5.0  # how often this process checks TTL and idleness
ignore_harmless_version_warnings()
# the scheduler's grouping of Dask workers into servers, pickled for workers_to_close (a
# function of the standard library: the scheduler node unpickles it without our package)
BY_SERVER = pickle.dumps(operator.attrgetter("host"))
WORKER_NAME = re.compile(r"^(?P<cluster>.+)-worker-(?P<index>\d+)(-\d+)?$")


class HetznerCluster(VMCluster):
    """A Dask cluster on Hetzner Cloud: `HetznerCluster(n_workers=4)`, then `Client(cluster)`.

    One scheduler server and `n_workers` worker servers in a private network, behind a
    firewall that admits only this client, talking mutual TLS. `close()` (or leaving a `with`
    block, or the end of the process) deletes every resource the cluster made; it is billed
    until then. Every argument left as None falls back to the `scherbelberg` dask config
    (scherbelberg.yaml, ~/.config/dask/*.yaml, DASK_SCHERBELBERG__* variables).

    Parameters
    ----------
    n_workers
        Worker servers to start with; `scale()` and `adapt()` change it later.
    name
        The cluster's name (lowercase letters, digits, hyphens; at most 40 characters):
        labels every resource and names the local state. Default: ``sbg-`` and six random
        characters.
    token
        The Hetzner API token. Default: the HETZNER or HCLOUD_TOKEN environment variable,
        then the config. It never leaves this process (unless ``reaper="node"``).
    endpoint
        The API's URL. Default: Hetzner Cloud, or HCLOUD_ENDPOINT (e.g. the local Hetzner).
    location
        Where the servers run (``fsn1``, ``nbg1``, ``hel1``, …); a neighbour in the same
        network zone when the types cannot be ordered there now.
    scheduler_server_type, worker_server_type
        A server type's name, or names in order of preference (``"cx33,cpx32"``). Default:
        the cheapest type that meets ``scheduler-requirement`` / ``worker-requirement`` and
        can be ordered now.
    image
        ``auto`` (the image whose Python is the client's, and an environment image when one
        exists), an image name such as ``debian-12``, or a snapshot's id.
    env_method
        How nodes get the client's packages: ``auto``, ``pip`` (uv installs the client's
        exact versions) or ``conda`` (the client's conda environment, exactly).
    extra_packages
        More requirements for the nodes, e.g. ``["xarray", "zarr>=2.18"]``.
    preinstalled
        The image already holds the environment (a snapshot): nodes only check it.
    env_images
        With image ``auto``: make an environment image in the background when none exists
        (billed per GB and month; see ``scherbelberg image``). False still uses existing ones.
    pip_index_url
        The package index nodes install from. Default: PyPI.
    python_downloads_json_url
        uv's list of Python builds, for nodes whose image lacks the client's Python.
    worker_nthreads, worker_memory
        Per Dask worker process. Default: the server type's cores and 90 % of its memory,
        divided by `worker_processes`.
    worker_processes
        Dask worker processes per worker server (default 1).
    network_cidr
        The private network's range (default ``10.0.0.0/16``).
    allowed_sources
        CIDRs that may reach the scheduler and SSH. Default: this client's address only.
    client_address_url
        The service that tells this client its public address (for the default above).
    labels
        Extra labels on every resource.
    timeouts
        Seconds per wait, by kind: ``action``, ``snapshot``, ``bootstrap``, ``registration``.
    ttl, idle_timeout
        Delete the cluster this long after creation, or after this long without tasks and
        clients (``"90s"``, ``"8h"``, seconds). Default: never.
    reaper
        Who enforces `ttl` and `idle_timeout`: ``client`` (this process and
        ``scherbelberg reap``) or ``node`` (also the scheduler itself; the token then goes to
        it, readable by root only).
    attach
        Internal to `from_existing`: load a cluster made earlier instead of creating one.
    shutdown_on_close
        False: `close()` lets go of the cluster and leaves it running (as `from_existing`
        does by default); `destroy()` deletes it.
    asynchronous, loop
        As for every Dask cluster: create with ``await HetznerCluster(..., asynchronous=True)``.
    **kwargs
        dask-cloudprovider's argument names where they mean the same (``docker_image``,
        ``security``, …), and SpecCluster's ``silence_logs``, ``scheduler_sync_interval``,
        ``shutdown_scheduler``. Anything else is an `ArgumentError` naming what to use.

    Raises
    ------
    ConfigError
        Bad input, found before anything is created.
    HetznerError
        The API refused a request (its ``code`` is Hetzner's error code).
    BootstrapError
        A node did not come up (the message holds its log's tail).

    Everything made is deleted again before any of these reaches the caller.
    """

    # the node classes are the extension point (tests swap in local Dask processes)
    scheduler_class: type[HetznerScheduler] = HetznerScheduler
    worker_class: type[HetznerWorker] = HetznerWorker
    scheduler_spec: dict[str, Any]
    worker_spec: dict[str, Any]

    @takes_dask_cloudprovider_arguments  # and checks n_workers (cluster/compat.py)
    def __init__(
        self,
        n_workers: int = 0,
        *,
        name: str | None = None,
        token: str | None = None,
        endpoint: str | None = None,
        location: str | None = None,
        scheduler_server_type: str | None = None,
        worker_server_type: str | None = None,
        image: str | None = None,
        env_method: str | None = None,
        extra_packages: list[str] | None = None,
        preinstalled: bool | None = None,
        env_images: bool | None = None,
        pip_index_url: str | None = None,
        python_downloads_json_url: str | None = None,
        worker_nthreads: int | None = None,
        worker_memory: str | None = None,
        worker_processes: int | None = None,
        network_cidr: str | None = None,
        allowed_sources: list[str] | None = None,
        client_address_url: str | None = None,
        labels: dict[str, str] | None = None,
        timeouts: dict[str, float] | None = None,
        ttl: str | float | None = None,
        idle_timeout: str | float | None = None,
        reaper: str | None = None,
        attach: bool = False,
        shutdown_on_close: bool = True,
        asynchronous: bool = False,
        loop: Any = None,
        **kwargs: Any,
    ) -> None:
        self._attach = attach
        self._destroying = False
        self._n_workers = n_workers
        self._worker_counter = 0
        self.protocol = "tls"
        self.scheduler_options: dict[str, Any] = {}
        self.worker_options: dict[str, Any] = {}
        self.options: dict[str, Any] = {}
        self.uuid = ""
        if attach:
            if not name:
                raise ConfigError("from_existing needs the cluster's name")
            self.state = ClusterState.load(validate_cluster_name(name))
            endpoint = endpoint or self.state.endpoint
        else:
            name = validate_cluster_name(name or generate_cluster_name())
            if name in ClusterState.list_names():
                raise ConfigError(
                    f"a cluster named {name!r} exists already (attach with from_existing)"
                )
        arguments: dict[str, Any] = dict(
            location=location,
            scheduler_server_type=scheduler_server_type,
            worker_server_type=worker_server_type,
            image=image,
            env_method=env_method,
            extra_packages=extra_packages,
            preinstalled=preinstalled,
            env_images=env_images,
            pip_index_url=pip_index_url,
            python_downloads_json_url=python_downloads_json_url,
            network_cidr=network_cidr,
            allowed_sources=allowed_sources,
            client_address_url=client_address_url,
            labels=labels,
            worker_nthreads=worker_nthreads,
            worker_memory=worker_memory,
            worker_processes=worker_processes,
            timeouts=timeouts,
        )
        if attach:  # what is not given again is what the cluster was made with
            self.settings = settings_module.resolve_again(arguments, self.state.settings)
        else:
            self.settings = settings_module.resolve(**arguments)
        # again per cluster: test runners (pytest) reset warning filters around each test
        ignore_harmless_version_warnings()
        if shutdown_on_close and not attach:
            exit_guard.install()  # here: the thread that may set a SIGTERM handler
        self.lifetime_settings = lifetime.resolve(ttl, idle_timeout, reaper)
        self.lifetime = lifetime.Lifetime()  # its deadline starts with the provisioning
        self._lifetime_watch: asyncio.Task[None] | None = None
        self._healing: asyncio.Task[None] | None = None  # replaces dead workers (healing.py)
        self.lease_seconds = lifetime.parse_duration(config.get("creation-lease"), "creation-lease")
        self._lease: lease.Lease | None = None  # held while this process creates the cluster
        self.session = HetznerSession(resolve_token(token), resolve_endpoint(endpoint))
        self.infra = infra.Infra()
        self.images: dict[str, lookups.ImageInfo] = {}
        self.auto_image = AutoImage(self)  # environment images: used, or made for next time
        self._rolling_back = False
        self.ssh_private_key = ""
        self.ca: ClusterCA | None = None
        self._group_lock = asyncio.Lock()
        self.scheduler_up = asyncio.Event()
        self.closing_all = False  # the whole cluster is being deleted
        self.deletions: list[int] = []  # delete actions to wait for at the end of close
        self._lost_track = False  # a node could not be deleted: sweep by label
        self._group_members: dict[int, set[str]] = {}  # placement group -> node names
        self.capacity = capacity.Catalog({}, {})  # what can be ordered where (read at start)
        self.ipv4_price = pricing.Ipv4Price(0.0, 0.0)  # per server, read at start
        self._refused: set[tuple[str, str]] = set()  # (type, location) answered 412
        self.node_location: dict[str, str] = {}  # role -> location, where it differs
        # every node object by name, also those still starting (SpecCluster's `workers` holds
        # a worker only once its start has finished): a scale-down must reach those too
        self.nodes: weakref.WeakValueDictionary[str, HetznerNode] = weakref.WeakValueDictionary()
        # silenced logs are ours to restore, also when detaching (SpecCluster's own exit stack
        # is only left through its _close, which would also retire the workers)
        self._quieted = ExitStack()
        silence_logs = kwargs.pop("silence_logs", False)
        if silence_logs:
            self._quieted.enter_context(silence_logging_cmgr(level=silence_logs))
            self._quieted.enter_context(silence_logging_cmgr(level=silence_logs, root="bokeh"))
        # not VMCluster.__init__: it serialises the user's whole dask config (token included)
        # into the nodes' options; our nodes get only what they need (nodes.py)
        SpecCluster.__init__(
            self,
            asynchronous=asynchronous,
            loop=loop,
            name=name,
            shutdown_on_close=shutdown_on_close,
            **kwargs,
        )

    # -- naming -------------------------------------------------------------------------------
    def _new_worker_name(self, worker_number: int) -> str:
        """Never reuse a name: a deleted server may still hold it for a moment."""
        self._worker_counter += 1
        return f"{self.name}-worker-{self._worker_counter - 1}"

    @property
    def image(self) -> lookups.ImageInfo:
        return self.images["worker"]

    def image_for(self, role: str) -> lookups.ImageInfo:
        return self.images["scheduler" if role == "scheduler" else "worker"]

    def env_for(self, role: str) -> EnvSpec:
        """What a new node of `role` installs, or only checks (booting from an env image)."""
        return for_architecture(self.auto_image.env_for(role), self.image_for(role).architecture)

    def say(self, message: str) -> None:
        """Tell the user (printed unless quiet, and kept in the cluster's logs)."""
        self._log(message)

    # -- lifecycle ----------------------------------------------------------------------------
    async def _start(self) -> None:
        while self.status == Status.starting:  # noqa: ASYNC110 - SpecCluster's own pattern
            await asyncio.sleep(0.01)
        if self.status == Status.running:
            return
        if self.status == Status.closed:
            raise ConfigError("Cluster is closed")
        first_workers: list[asyncio.Future[Any]] = []
        try:
            if self._attach:
                existing = await self._reattach()
            else:
                await self._provision()
                self.auto_image.start_making()
                existing = {}
            self._make_specs(existing)
            first_workers = await self._start_together()
            # not VMCluster._start: it would rebuild both specs from its scheduler/worker options
            await SpecCluster._start(self)
            check_versions("scheduler", await self.scheduler_comm.versions())
            self.scheduler_up.set()
            if first_workers:
                await asyncio.gather(*first_workers)
            await self.mark_ready()
            if self.shutdown_on_close and not self._attach:
                exit_guard.guard(self)  # deleted when this process ends without close()
            if self.lifetime.limited:
                self._lifetime_watch = asyncio.ensure_future(self._enforce_lifetime())
            self._healing = asyncio.ensure_future(healing.Healer(self).run())  # a HealedCluster
        except BaseException as exc:
            for task in first_workers:
                task.cancel()
            if self._lease is not None:
                self._lease.release()
            try:
                await self._rollback()
            except BaseException:  # the cause of the rollback is what the user must see
                log.exception(
                    "rolling back cluster %s did not finish: `scherbelberg destroy %s` "
                    "deletes what is left",
                    self.name,
                    self.name,
                )
            cause = exc.__cause__ if isinstance(exc, RuntimeError) else None
            if isinstance(cause, ScherbelbergError | VersionMismatch):
                raise cause from None
            raise

    async def _provision(self) -> None:
        """Check every input against the API, then make keys, CA and the infrastructure."""
        s, session = self.settings, self.session
        # TTL and idle timeout travel as labels on every resource (cluster/lifetime.py)
        self.lifetime = self.lifetime_settings.start()
        s.labels.update(self.lifetime.labels())
        # and every resource says "being created until <deadline>" (cluster/lease.py)
        self._lease = lease.Lease(session, self.lease_seconds or 600.0)
        s.labels.update(self._lease.labels())
        # the first request also proves the token (every request counts: no extra check)
        location = await lookups.location(session, s.location)
        await self._resolve_types_and_images(location.name)
        await self._conda_packages_for_nodes()
        if s.image_note:
            self._log(f"cluster {self.name}: {s.image_note}")
        await self.auto_image.choose()
        sources = s.allowed_sources or [f"{await self._client_address()}/32"]
        self.ssh_private_key, ssh_public = ssh.generate_ed25519()
        self.ca = ClusterCA.generate(self.name)
        self.state = ClusterState(
            name=self.name,
            endpoint=session.endpoint,
            created=time.time(),
            location=str(s.location),  # the chosen one: maybe a neighbour of the asked
            labels=dict(s.labels),
            settings=s.as_dict(),
        )
        self.state.save_ssh_key(self.ssh_private_key)
        self.state.save_ca(self.ca)
        self.state.save_client_tls(self.ca.cert_pem, self.ca.issue("client", "client"))
        self.state.save()
        self.security = client_security(self.state.client_tls())
        await infra.create(
            session,
            self.name,
            extra_labels=s.labels,
            ssh_public_key=ssh_public,
            cidr=s.network_cidr,
            network_zone=location.network_zone,
            allowed_sources=sources,
            scheduler_port=s.scheduler_port,
            infra=self.infra,
        )
        self._save_infra()
        assert self.infra.ssh_key_id is not None
        self._lease.hold(self.infra.ssh_key_id, self._ssh_key_labels())
        self.ipv4_price = await pricing.ipv4_price(session, str(s.location))
        cost = self.price(self._n_workers)
        self._log(
            f"cluster {self.name} in {s.location}: scheduler {s.scheduler_type.name} + "
            f"{self._n_workers} x {s.worker_type.name}, {cost.price_hourly:.4f} {cost.currency}/h "
            f"incl. IPv4 (worker {s.worker_type.price_hourly or 0:.4f} + IPv4 "
            f"{self.ipv4_price.hourly:.4f} each; billed until deleted)"
        )

    def price(self, workers: int) -> pricing.Estimate:
        """What this cluster costs with `workers` workers, IPv4 addresses included."""
        s = self.settings
        return pricing.estimate(
            s.scheduler_type, s.worker_type, workers, str(s.location), self.ipv4_price
        )

    @classmethod
    def estimate(cls, n_workers: int = 0, **kwargs: Any) -> pricing.Estimate:
        """The price of the cluster these arguments would make, from the API's catalog and
        `/pricing`, with primary IPv4 addresses; nothing is created. Also from a notebook."""
        return estimate_cluster(n_workers, cls.argument_names(), **kwargs)

    @classmethod
    async def estimate_async(cls, n_workers: int = 0, **kwargs: Any) -> pricing.Estimate:
        """`estimate`, awaited in the caller's event loop."""
        return await estimate_cluster_async(n_workers, cls.argument_names(), **kwargs)

    @classmethod
    def argument_names(cls) -> list[str]:
        """The keyword arguments this class takes (besides n_workers)."""
        parameters = inspect.signature(cls.__init__).parameters
        skip = ("self", "n_workers")
        return [n for n, p in parameters.items() if n not in skip and p.kind is not p.VAR_KEYWORD]

    def _ssh_key_labels(self) -> dict[str, str]:
        return labels.for_resource(self.name, "ssh-key", self.settings.labels)

    async def mark_ready(self) -> None:
        """The cluster is complete: drop the creation lease and mark it ready (one request,
        retried for a while: an unmarked cluster would look abandoned to `cleanup`)."""
        held, self._lease = self._lease, None
        if held is None or self.infra.ssh_key_id is None:
            return
        self.settings.labels.pop(lease.LEASE, None)  # servers added later carry none
        self.state.labels = dict(self.settings.labels)
        self.state.save()
        for attempt in range(6):
            try:
                await held.ready(self.infra.ssh_key_id, self._ssh_key_labels())
                return
            except HetznerError:
                if attempt == 5:
                    raise
                await asyncio.sleep(2**attempt)

    async def _conda_packages_for_nodes(self) -> None:
        """The conda method: the client's package list for each platform the nodes run on;
        one ConfigError naming what has no build there (bootstrap/conda_env.py)."""
        s = self.settings
        if s.env.method == "conda" and s.env.conda_packages and not s.env.preinstalled:
            arches = {s.scheduler_type.architecture, s.worker_type.architecture}
            lists = await asyncio.to_thread(conda_env.for_nodes, s.env.conda_packages, arches)
            s.env = replace(s.env, conda_packages=lists)

    async def _reattach(self) -> dict[str, ServerRecord]:
        """Load keys and CA from the state dir; find the servers by label."""
        s, session, state = self.settings, self.session, self.state
        await self._resolve_types_and_images(s.location)
        await self._conda_packages_for_nodes()  # for the workers added from here
        await self.auto_image.choose()  # ... and they boot from an environment image if any
        self.lifetime = lifetime.Lifetime.from_labels(state.labels)
        self.ssh_private_key = state.ssh_key_path().read_text()
        self.ca = state.load_ca()
        self.security = client_security(state.client_tls())
        self.infra = infra.Infra(
            ssh_key_id=state.ssh_key_id,
            network_id=state.network_id,
            firewall_id=state.firewall_id,
            placement_group_ids=list(state.placement_group_ids),
        )
        servers = await infra.list_labelled(session, "servers", labels.cluster_selector(self.name))
        found = {record.name: record for record in map(ServerRecord.from_api, servers)}
        if not any(record.role == "scheduler" for record in found.values()):
            raise HetznerError(f"cluster {self.name} has no scheduler server (destroy it?)")
        by_id = {record.server_id: name for name, record in found.items()}
        for group in await infra.list_labelled(
            session, "placement_groups", labels.cluster_selector(self.name)
        ):
            members = {by_id[sid] for sid in group.get("servers", []) if sid in by_id}
            self._group_members[int(group["id"])] = members
            if int(group["id"]) not in self.infra.placement_group_ids:
                self.infra.placement_group_ids.append(int(group["id"]))
        indices = [
            int(m["index"])
            for n in found
            if (m := WORKER_NAME.match(n)) and m["cluster"] == self.name
        ]
        self._worker_counter = max(indices, default=-1) + 1
        return found

    async def _start_together(self) -> list[asyncio.Future[Any]]:
        """Create the scheduler's server, then start the first workers while it boots.

        Workers only need the scheduler's private address, which Hetzner returns with the
        create request; they register once it is up. Booting all nodes at once instead of
        scheduler-then-workers halves the time to a ready cluster.
        """
        spec: dict[str, Any] = self.scheduler_spec
        scheduler = self.scheduler_class(**spec["options"])
        if scheduler.server is None:
            await scheduler.post_server()
            if scheduler.server is not None and scheduler.server.private_ip is None:
                await scheduler.refresh_private_ip(f"creating scheduler {scheduler.name}")
        self.scheduler_spec = {"cls": _Given(scheduler), "options": {}}
        if scheduler.server is None or scheduler.server.private_ip is None:
            return []  # no address yet: workers start after the scheduler, as usual
        address = f"tls://{scheduler.server.private_ip}:{self.settings.scheduler_port}"
        started: list[asyncio.Future[Any]] = []
        workers: dict[str, Any] = self.worker_spec
        for name, worker_spec in workers.items():
            worker = self.worker_class(address, name=name, **worker_spec["options"])
            self.workers[name] = worker  # SpecCluster's own record of started workers
            started.append(asyncio.ensure_future(worker))
        return started

    async def _resolve_types_and_images(self, location: str) -> None:
        """Server types that can be had now (capacity.py), in `location` or a neighbour of its
        network zone, and per architecture the image (cax types are arm)."""
        s, session = self.settings, self.session
        self.capacity = await capacity.load(session)
        if self._attach:  # the servers exist: their types, whether orderable now or not
            names = {"scheduler": s.scheduler_type_name, "worker": s.worker_type_name}
            choice = capacity.Choice(str(location), names)
        else:
            choice = capacity.choose(self.capacity, [s.scheduler_wish, s.worker_wish], location)
        if choice.location != str(location):
            self._log(
                f"cluster {self.name}: nothing that fits can be ordered in {location} now; "
                f"using {choice.location} (same network zone)"
            )
        s.location = config.Sourced(choice.location, "location", s.sources.get("location", ""))
        s.scheduler_type = self.capacity.info(choice.types["scheduler"], choice.location)
        s.worker_type = self.capacity.info(choice.types["worker"], choice.location)
        await self._images_for_types()

    async def _images_for_types(self) -> None:
        s = self.settings
        types = {"scheduler": s.scheduler_type, "worker": s.worker_type}
        self.images.update(await lookups.images_for(self.session, s.image_name, types))

    def fallback_type(self, role: str, refused_type: str, location: str) -> tuple[str, str] | None:
        """After 412 resource_unavailable (capacity went between the catalog read and the
        create): the next type and location for `role`'s nodes still to be made, or None.
        Same architecture (the image), same network zone (the private network)."""
        s = self.settings
        self._refused.add((refused_type, location))
        wish = s.scheduler_wish if role == "scheduler" else s.worker_wish
        current = s.scheduler_type if role == "scheduler" else s.worker_type
        for place in self.capacity.neighbours(location):
            name = self.capacity.pick(wish, place, self._refused)
            if name and self.capacity.info(name, place).architecture == current.architecture:
                chosen = self.capacity.info(name, place)
                if role == "scheduler":
                    s.scheduler_type = chosen
                else:
                    s.worker_type = chosen
                self.node_location[role] = place
                log.warning(
                    "%s type %s cannot be ordered in %s now: using %s in %s",
                    role,
                    refused_type,
                    location,
                    name,
                    place,
                )
                return name, place
        return None

    def _make_specs(self, existing: dict[str, ServerRecord]) -> None:
        cluster: NodeCluster = self  # mypy checks that this cluster is what nodes need
        group = (
            {"group": [f"-{i}" for i in range(self.settings.worker_processes)]}
            if self.settings.worker_processes > 1
            else {}
        )
        scheduler = next((v for v in existing.values() if v.role == "scheduler"), None)
        self.scheduler_spec = {
            "cls": self.scheduler_class,
            "options": {
                "cluster": cluster,
                "name": scheduler.name if scheduler else f"{self.name}-scheduler",
                "existing": scheduler,
            },
        }
        self.new_spec = {"cls": self.worker_class, "options": {"cluster": cluster}, **group}
        self.worker_spec = {}
        workers = sorted((v for v in existing.values() if v.role == "worker"), key=lambda v: v.name)
        for record in workers:
            self.worker_spec[record.name] = {
                "cls": self.worker_class,
                "options": {"cluster": cluster, "existing": record},
                **group,
            }
        for _ in range(0 if self._attach else self._n_workers):
            self.worker_spec.update(self.new_worker_spec())

    async def placement_group_for(self, node_name: str) -> int:
        """A spread group with room (Hetzner allows 10 servers per group); a new one if full."""
        async with self._group_lock:
            for group_id in self.infra.placement_group_ids:
                members = self._group_members.setdefault(group_id, set())
                if len(members) < infra.SPREAD_GROUP_SIZE:
                    members.add(node_name)
                    return group_id
            group_id = await infra.new_placement_group(
                self.session, self.name, len(self.infra.placement_group_ids), self.settings.labels
            )
            self.infra.placement_group_ids.append(group_id)
            self._group_members[group_id] = {node_name}
            self._save_infra()
            return group_id

    async def _client_address(self) -> str:
        return await client_address(self.settings.client_address_url)

    async def _rollback(self) -> None:
        """After a failed start: delete what was made (a new cluster) or just let go (attach)."""
        self._rolling_back = True
        with suppress(Exception):
            await self._close()
        if not self._attach and getattr(self, "state", None) is not None:
            self._log(f"rolling back cluster {self.name}")
            await infra.delete_cluster(
                self.session, self.name, deadline=self.settings.timeouts["action"]
            )
            self.state.delete()

    async def _enforce_lifetime(self) -> None:
        """While this process lives, it deletes the cluster at its TTL or idle timeout (as
        `scherbelberg reap` and the node's reaper do when it does not)."""
        while self.status == Status.running:
            reason = None
            if self.lifetime.expired():
                reason = "its TTL has passed"
            elif self.lifetime.idle_timeout is not None:
                with suppress(Exception):  # a missed answer is no reason to delete
                    status = await self.scheduler_comm.scherbelberg_idle()
                    if self.lifetime.idle_too_long(lifetime.idle_seconds(status)):
                        reason = "it has been idle (no tasks, no clients) too long"
            if reason is not None:
                log.warning("deleting cluster %s: %s", self.name, reason)
                self._lifetime_watch = None  # do not cancel ourselves while closing
                await self.destroy()
                return
            await asyncio.sleep(LIFETIME_CHECK_SECONDS)

    # -- scaling ------------------------------------------------------------------------------
    @property
    def retires_gracefully(self) -> bool:
        return self.status == Status.running and not self._destroying

    def scale(self, n: int = 0, memory: str | None = None, cores: int | None = None) -> Any:
        """Scaling down asks the scheduler which workers to retire (keys move first)."""
        check_worker_count(n, "scale(n)")
        if memory is not None or cores is not None:
            return super().scale(n, memory=memory, cores=cores)
        if n < len(self.worker_spec) and self.status == Status.running:
            return self.sync(self._scale_down_to, n)
        return super().scale(n)

    async def _scale_down_to(self, n: int) -> None:
        """Drop workers that are not registered yet first (no data to move, and their start
        is cut short), then let the scheduler choose whom to retire among the running ones.
        Returns once their servers are deleted, without waiting for workers still starting."""
        surplus = len(self.worker_spec) - n
        identity = await self.scheduler_comm.identity()
        running = {str(w.get("name")) for w in identity.get("workers", {}).values()}
        retiring: list[str] = []
        for name in [s for s in self.worker_spec if not self._spec_running(s, running)]:
            if surplus == 0:
                break
            retiring.append(name)
            surplus -= 1
        if surplus > 0:
            # whole servers: the scheduler groups a server's Dask processes by their host (one
            # address per server) and counts processes, so `surplus` servers are n of them
            processes = self.settings.worker_processes
            chosen = await self.scheduler_comm.workers_to_close(
                n=surplus * processes, attribute="name", key=BY_SERVER
            )
            await self.scheduler_comm.retire_workers(
                names=list(chosen), remove=True, close_workers=True
            )
            retiring += sorted({self._spec_name(str(c)) for c in chosen})
        for name in retiring:
            self.worker_spec.pop(name, None)
            node = self.nodes.get(name)
            if node is not None:
                node.retire()
        await self._correct_state()

    async def replace_worker(self, name: str) -> None:
        """A worker is dead (healing.py): a new server takes its place, the dead one is
        deleted, and the scheduler forgets it at once (not after its worker TTL)."""
        if name not in self.worker_spec:
            return
        node = self.workers.get(name)
        dask_names = {name}
        if isinstance(node, HetznerWorker):
            node.lost = True  # nothing to retire gracefully: its data is gone with it
            dask_names = set(node.dask_names)
        identity = await self.scheduler_comm.identity()
        for address in healing.addresses_of(identity, dask_names):
            await self.scheduler_comm.unregister(
                address=address, stimulus_id=f"scherbelberg-lost-{time.time()}"
            )
        del self.worker_spec[name]
        self.worker_spec.update(self.new_worker_spec())
        log.warning("worker %s is gone: replacing it with a new server", name)
        await self._correct_state()

    async def scale_down(self, workers: Any) -> None:
        """adapt()'s way down: the scheduler retired these; a start still in progress for
        any of them ends at once instead of waiting for a worker that is gone."""
        for name in {self._spec_name(str(w)) for w in workers}:
            node = self.nodes.get(name)
            if node is not None:
                node.retire()
        await super().scale_down(workers)

    def _spec_name(self, dask_name: str) -> str:
        if dask_name in self.worker_spec:
            return dask_name
        match = WORKER_NAME.match(dask_name)
        return f"{match['cluster']}-worker-{match['index']}" if match else dask_name

    def _spec_running(self, spec_name: str, running: set[str]) -> bool:
        return any(self._spec_name(n) == spec_name for n in running)

    # -- state --------------------------------------------------------------------------------
    def _save_infra(self) -> None:
        self.state.ssh_key_id = self.infra.ssh_key_id
        self.state.network_id = self.infra.network_id
        self.state.firewall_id = self.infra.firewall_id
        self.state.placement_group_ids = list(self.infra.placement_group_ids)
        self.state.save()

    def remember(self, node: HetznerNode) -> None:
        if node.server is None:
            return
        if node.role == "scheduler":
            self.state.scheduler = asdict(node.server)
        else:
            self.state.workers[node.name] = asdict(node.server)
        self._save_infra()

    def forget(self, node: HetznerNode) -> None:
        for members in self._group_members.values():
            members.discard(node.name)
        if node.role == "scheduler":
            self.state.scheduler = None
        else:
            self.state.workers.pop(node.name, None)
        if not self._destroying or self.state.directory.exists():
            with suppress(FileNotFoundError):
                self._save_infra()

    # -- closing ------------------------------------------------------------------------------
    async def _close(self) -> None:
        if self.status == Status.closed:
            return
        if self._lifetime_watch is not None:
            self._lifetime_watch.cancel()
            self._lifetime_watch = None
        if self._healing is not None:
            self._healing.cancel()
            self._healing = None
        # an image being made for next time: finished first, unless the start failed
        await self.auto_image.finish(wait=not self._rolling_back)
        if not (self.shutdown_on_close or self._destroying):
            await self._detach()
            return
        self._destroying = self.closing_all = True
        try:
            await super()._close()
        except Exception:
            log.exception("closing cluster %s", self.name)
            self._lost_track = True
        self._quieted.close()
        state = getattr(self, "state", None)
        if state is None:
            return
        deadline = self.settings.timeouts["action"]
        try:
            await self.session.wait_for_actions(
                self.deletions, deadline=deadline, doing=f"deleting cluster {self.name}"
            )
            self.deletions = []
        except HetznerError:
            self._lost_track = True
        if self._lost_track:
            # something went wrong on the way: find what is left by label
            await infra.delete_cluster(self.session, self.name, deadline=deadline)
        else:
            await infra.delete_known(self.session, self.name, self.infra)
        state.delete()
        exit_guard.release(self.name)

    async def _detach(self) -> None:
        """Let go of the cluster without touching its servers (it lives on)."""
        exit_guard.release(self.name)
        self.status = Status.closing
        nodes = [self.scheduler, *self.workers.values()]
        for node in nodes:
            if isinstance(node, HetznerScheduler) and node.tunnel is not None:
                await node.tunnel.close()
            if isinstance(node, HetznerNode) and node.conn is not None:
                node.conn.close()
        if self.scheduler_comm:
            await self.scheduler_comm.close_rpc()
        self._quieted.close()
        # not SpecCluster._close: it would retire the workers and stop the scheduler
        await DaskCluster._close(self)

    async def destroy(self) -> None:
        """Delete every resource of this cluster, also one that was only attached to."""
        self._destroying = True
        await self._close()

    # -- what users look at -------------------------------------------------------------------
    @property
    def dashboard_link(self) -> str:
        scheduler = getattr(self, "scheduler", None)
        if isinstance(scheduler, HetznerScheduler) and scheduler.tunnel is not None:
            return f"http://127.0.0.1:{scheduler.tunnel.local_port}/status"
        return ""

    @property
    def scheduler_address(self) -> str:
        scheduler = getattr(self, "scheduler", None)
        return str(getattr(scheduler, "external_address", "") or "")

    @classmethod
    def from_existing(cls, name: str, **kwargs: Any) -> HetznerCluster:
        """Re-attach to a cluster made earlier (by any process, from any directory)."""
        kwargs.setdefault("shutdown_on_close", False)
        return cls(name=name, attach=True, **kwargs)


class _Given:
    """A scheduler "class" for SpecCluster that hands back the node already being made."""

    def __init__(self, node: HetznerScheduler) -> None:
        self.node = node

    def __call__(self, **options: Any) -> HetznerScheduler:
        return self.node
