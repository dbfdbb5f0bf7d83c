"""The scheduler and the workers: each a `ProcessInterface` backed by one Hetzner server.

`start()` creates the server with a cloud-config made for it, waits for Hetzner's actions and
then, over SSH with a pinned host key, for the node's own bootstrap to report ready (or failed,
with its log). A worker counts as started only once the scheduler knows it by name. `close()`
retires a worker gracefully (its keys move first) before its server is deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Protocol

from dask_cloudprovider.generic.vmcluster import VMInterface
from distributed.deploy.spec import ProcessInterface

from ..bootstrap.cloud_config import (
    STATE_DIR,
    WAIT_COMMAND,
    NodeConfig,
    NodeTls,
    build_cloud_config,
)
from ..bootstrap.env import with_dashboard
from ..errors import BootstrapError, HetznerError, ScherbelbergError
from ..hetzner import labels
from ..hetzner.infra import delete_servers, delete_servers_now
from ..hetzner.servers import ServerRecord
from . import node_reaper_setup, ssh
from .versions import check as check_versions

if TYPE_CHECKING:
    import asyncssh

    from ..bootstrap.env import EnvSpec
    from ..hetzner.infra import Infra
    from ..hetzner.lookups import ImageInfo
    from ..hetzner.session import HetznerSession
    from .lifetime import Lifetime, LifetimeSettings
    from .settings import Settings
    from .state import ClusterState
    from .tls import ClusterCA

log = logging.getLogger(__name__)


class _Retired(ScherbelbergError):
    """Internal: the node was scaled away while it was starting."""


class NodeCluster(Protocol):
    """What a node needs of its cluster (`HetznerCluster` is one): its settings, API session,
    keys and state, and the few decisions only the cluster can make (placement group, type
    fallback, image and environment per role). Declared here so nodes need not import it."""

    name: str
    settings: Settings
    session: HetznerSession
    state: ClusterState
    infra: Infra
    ca: ClusterCA | None
    ssh_private_key: str
    lifetime: Lifetime
    lifetime_settings: LifetimeSettings
    node_location: dict[str, str]
    nodes: weakref.WeakValueDictionary[str, HetznerNode]
    deletions: list[int]
    scheduler_up: asyncio.Event
    closing_all: bool
    scheduler_comm: Any

    @property
    def retires_gracefully(self) -> bool: ...
    def image_for(self, role: str) -> ImageInfo: ...
    def env_for(self, role: str) -> EnvSpec: ...
    async def placement_group_for(self, node_name: str) -> int: ...
    def fallback_type(
        self, role: str, refused_type: str, location: str
    ) -> tuple[str, str] | None: ...
    def remember(self, node: HetznerNode) -> None: ...
    def forget(self, node: HetznerNode) -> None: ...


class HetznerNode(VMInterface):
    """What scheduler and worker share: one server, its SSH connection, its lifecycle."""

    role = "node"

    def __init__(
        self,
        *,
        cluster: NodeCluster,
        name: str,
        existing: ServerRecord | None = None,
        **kwargs: Any,
    ) -> None:
        # not VMInterface.__init__: it serialises the user's whole dask config (token included)
        ProcessInterface.__init__(self)
        self.cluster = cluster
        self.name = name
        self.server = existing
        self.conn: asyncssh.SSHClientConnection | None = None
        self.fresh = False  # created by this process (not re-attached)
        # when each stage was reached (time.time()): requested, created (Hetzner's actions
        # done), booted (SSH answers), environment, dask (the node's own stages),
        # bootstrapped, ready (registered)
        self.events: dict[str, float] = {}
        self._actions: list[int] = []
        # set when the cluster no longer wants this node (a scale-down during its start):
        # the start stops waiting, deletes the server if one was made, and returns
        self.retired = asyncio.Event()
        cluster.nodes[name] = self

    # -- the server ---------------------------------------------------------------------------
    async def create_vm(self) -> tuple[str, str]:
        """Create the server and wait for Hetzner's create and start actions."""
        if self.server is None:
            await self.post_server()
        assert self.server is not None
        cluster = self.cluster
        doing = f"creating {self.role} {self.name}"
        await cluster.session.wait_for_actions(
            self._actions, deadline=cluster.settings.timeouts["action"], doing=doing
        )
        if self.server.private_ip is None:  # not in the create response: ask once more
            await self.refresh_private_ip(doing)
        if self.server.private_ip is None:
            raise BootstrapError(f"{self.name} has no address in the cluster's private network")
        self.events["created"] = time.time()
        return self.server.private_ip, self.server.public_ip

    async def refresh_private_ip(self, doing: str) -> None:
        assert self.server is not None
        fresh = await self.cluster.session.request(
            doing, "GET", f"/servers/{self.server.server_id}"
        )
        self.server.private_ip = ServerRecord.from_api(fresh["server"]).private_ip
        self.cluster.remember(self)

    async def post_server(self) -> None:
        """Ask Hetzner for the server; returns as soon as its addresses are known."""
        self.events["requested"] = time.time()
        cluster = self.cluster
        session, settings = cluster.session, cluster.settings
        host_private, host_public = ssh.generate_ed25519()
        cluster.state.save_host_key(self.name, host_public)
        # a node reaper deletes its own server last, so that server must hold nothing
        # (a placement group) that only its deletion would free
        own_reaper = self.role == "scheduler" and cluster.lifetime.reaper == "node"
        group = None if own_reaper else await cluster.placement_group_for(self.name)
        doing = f"creating {self.role} {self.name}"
        while True:
            # the type decides the node's threads and memory: the config follows a fallback
            server_type = (
                settings.scheduler_type if self.role == "scheduler" else settings.worker_type
            )
            location = cluster.node_location.get(self.role, str(settings.location))
            user_data = build_cloud_config(self.node_config(host_private, host_public))
            try:
                body = await session.create(
                    doing,
                    "servers",
                    {
                        "name": self.name,
                        "server_type": server_type.name,
                        "image": cluster.image_for(self.role).id,
                        "location": location,
                        "ssh_keys": [cluster.infra.ssh_key_id],
                        "networks": [cluster.infra.network_id],
                        "firewalls": [{"firewall": cluster.infra.firewall_id}],
                        **({"placement_group": group} if group is not None else {}),
                        "user_data": user_data,
                        "labels": {
                            **labels.for_resource(cluster.name, self.role, settings.labels),
                            f"{labels.PREFIX}/node": self.name,
                        },
                        "start_after_create": True,
                    },
                )
                break
            except HetznerError as exc:
                # capacity can go between the catalog read and this create
                if exc.code != "resource_unavailable":
                    raise
                if cluster.fallback_type(self.role, server_type.name, location) is None:
                    raise HetznerError(
                        f"{doing}: {server_type.name} cannot be ordered in {location} now, "
                        "and no other type that fits can be had in its network zone",
                        exc.code,
                    ) from None
        self.server = ServerRecord.from_api(body["server"])
        cluster.remember(self)
        self.fresh = True
        # an adopted server (see HetznerSession.create) comes without its actions
        first = [body["action"]["id"]] if body.get("action") else []
        self._actions = [*first, *[a["id"] for a in body.get("next_actions", [])]]

    def node_config(self, host_private: str, host_public: str) -> NodeConfig:
        """What this node's cloud-config is built from: shared parts plus `role_options()`."""
        settings = self.cluster.settings
        env = self.cluster.env_for(self.role)
        return NodeConfig(
            role="scheduler" if self.role == "scheduler" else "worker",
            name=self.name,
            env=with_dashboard(env) if self.role == "scheduler" else env,
            tls=self.tls_for_node(),
            host_key_private=host_private,
            host_key_public=host_public,
            private_cidr=settings.network_cidr,
            scheduler_port=settings.scheduler_port,
            dashboard_port=settings.dashboard_port,
            **self.role_options(),
        )

    def role_options(self) -> dict[str, Any]:
        return {}

    def tls_for_node(self) -> NodeTls:
        """A key and certificate of this node's own, from the cluster's CA."""
        ca = self.cluster.ca
        assert ca is not None
        leaf = ca.issue("scheduler" if self.role == "scheduler" else "worker", self.name)
        return NodeTls(ca_pem=ca.cert_pem, cert_pem=leaf.cert_pem, key_pem=leaf.key_pem)

    async def wait_bootstrapped(self) -> None:
        """SSH in (host key pinned) and block on the node's own wait helper: no API polling."""
        assert self.server is not None
        cluster = self.cluster
        deadline = cluster.settings.timeouts["bootstrap"]
        started = time.monotonic()
        self.conn = await ssh.connect(
            self.server.public_ip,
            cluster.ssh_private_key,
            cluster.state.host_keys()[self.name],
            deadline=deadline,
        )
        self.events["booted"] = time.time()
        remaining = max(10.0, deadline - (time.monotonic() - started))
        watcher = asyncio.ensure_future(self._watch_stages(self.conn))
        try:
            status, out, err = await ssh.run(
                self.conn, f"{WAIT_COMMAND} {int(remaining)}", timeout=remaining + 30
            )
        finally:
            watcher.cancel()
        if status != 0:
            what = "failed" if status == 1 else f"not ready after {deadline:.0f} s"
            tail = (out + err).strip()
            raise BootstrapError(f"{self.role} {self.name} bootstrap {what}:\n{tail}")

    async def _watch_stages(self, conn: asyncssh.SSHClientConnection) -> None:
        """Record the node's bootstrap stages (environment, dask) as they happen, for progress
        displays; over the open SSH connection, so it costs no API requests."""
        seen = ""
        while True:
            with suppress(Exception):
                _, out, _ = await ssh.run(conn, f"cat {STATE_DIR}/stage 2>/dev/null", timeout=10)
                stage = out.strip()
                if stage and stage != seen:
                    self.events[stage] = time.time()
                    seen = stage
            await asyncio.sleep(1.0)

    async def destroy_vm(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.server is None:
            return
        doing = f"deleting {self.role} {self.name}"
        if self.cluster.closing_all:
            # the whole cluster goes: delete now, wait once for all servers at the end
            self.cluster.deletions.extend(
                await delete_servers_now(self.cluster.session, [self.server.server_id], doing=doing)
            )
        else:
            await delete_servers(
                self.cluster.session,
                [self.server.server_id],
                deadline=self.cluster.settings.timeouts["action"],
                doing=doing,
            )
        self.cluster.forget(self)
        self.server = None

    def retire(self) -> None:
        """The cluster no longer wants this node: a start in progress ends early."""
        self.retired.set()

    async def start(self) -> None:
        try:
            if self.server is None or self.fresh:
                if self.server is None and not self.retired.is_set():
                    # not cancellable: once asked for, the server's id must be known to us
                    await self.post_server()
                # Hetzner's actions and the node's own boot are awaited together: SSH tells
                # when the node is up, a failed action ends the wait at once
                await self._unless_retired(
                    lambda: _both(self.create_vm(), self.wait_bootstrapped())
                )
                self.events["bootstrapped"] = time.time()
            else:
                await self.attach()
            await self._unless_retired(self.after_start)
            self.events["ready"] = time.time()
        except _Retired:
            # scaled away while starting: nothing to wait for, nothing left billing
            log.debug("%s retired while starting", self.name)
            await asyncio.shield(self.destroy_vm())
        except BaseException:
            # a node that did not come up is deleted at once: nothing half-made stays billing
            # (one we only re-attached to is left alone)
            if self.fresh:
                try:
                    await asyncio.shield(self.destroy_vm())
                except Exception:
                    log.exception("could not delete %s after its failed start", self.name)
            raise
        await super().start()

    async def _unless_retired(self, step: Callable[[], Awaitable[Any]]) -> None:
        """Await `step()`, or cancel it and raise `_Retired` as soon as the node is retired."""
        if self.retired.is_set():
            raise _Retired
        task = asyncio.ensure_future(step())
        retired = asyncio.ensure_future(self.retired.wait())
        try:
            await asyncio.wait([task, retired], return_when=asyncio.FIRST_COMPLETED)
        finally:
            retired.cancel()
        if task.done():
            task.result()
            return
        task.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await task
        raise _Retired

    async def attach(self) -> None:
        """Re-attach to a server that exists (from_existing)."""

    async def after_start(self) -> None:
        """What the role needs once its node is up."""

    async def close(self) -> None:
        await self.destroy_vm()
        # ProcessInterface's close, not VMInterface's: that would destroy the VM a second time
        await super(VMInterface, self).close()


class HetznerScheduler(HetznerNode):
    role = "scheduler"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.port = self.cluster.settings.scheduler_port
        self.tunnel: ssh.Tunnel | None = None

    def _addresses(self) -> None:
        assert self.server is not None and self.server.private_ip is not None
        self.address = f"tls://{self.server.private_ip}:{self.port}"  # for the workers
        self.external_address = f"tls://{self.server.public_ip}:{self.port}"  # for the client

    async def attach(self) -> None:
        assert self.server is not None
        self.conn = await ssh.connect(
            self.server.public_ip,
            self.cluster.ssh_private_key,
            self.cluster.state.host_keys()[self.name],
            deadline=60,
        )

    async def after_start(self) -> None:
        self._addresses()
        assert self.conn is not None
        self.tunnel = await ssh.Tunnel.open(
            self.conn, "127.0.0.1", self.cluster.settings.dashboard_port
        )
        cluster = self.cluster
        if self.fresh and cluster.lifetime.reaper == "node" and self.server is not None:
            # the one place the token reaches a node: a root-only file, over SSH
            await node_reaper_setup.install(
                self.conn,
                python=f"{cluster.settings.env.prefix.rstrip('/')}/bin/python",
                config=node_reaper_setup.reaper_config(
                    cluster=cluster.name,
                    endpoint=cluster.lifetime_settings.reaper_endpoint or cluster.session.endpoint,
                    server_id=self.server.server_id,
                    expires=cluster.lifetime.expires,
                    idle_timeout=cluster.lifetime.idle_timeout,
                ),
                token=cluster.session.token,
            )

    async def destroy_vm(self) -> None:
        if self.tunnel is not None:
            await self.tunnel.close()
            self.tunnel = None
        await super().destroy_vm()


class HetznerWorker(HetznerNode):
    role = "worker"

    def __init__(self, scheduler: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scheduler = scheduler  # tls://<scheduler private ip>:port
        self.lost = False  # its server died (healing.py): nothing to retire, only to delete

    def role_options(self) -> dict[str, Any]:
        settings = self.cluster.settings
        return {
            "scheduler_address": self.scheduler,
            "nthreads": settings.worker_nthreads,
            "memory_limit": settings.worker_memory,
            "nworkers": settings.worker_processes,
        }

    @property
    def dask_names(self) -> set[str]:
        """The names this server's workers register with (dask appends -i for nworkers > 1)."""
        n = self.cluster.settings.worker_processes
        return {self.name} if n == 1 else {f"{self.name}-{i}" for i in range(n)}

    async def after_start(self) -> None:
        """Started means registered at the scheduler, with the client's versions."""
        await self.cluster.scheduler_up.wait()  # workers may boot before the scheduler is up
        deadline = time.monotonic() + self.cluster.settings.timeouts["registration"]
        comm = self.cluster.scheduler_comm
        while True:
            workers = (await comm.identity()).get("workers", {})
            mine = [a for a, w in workers.items() if str(w.get("name")) in self.dask_names]
            if len(mine) == len(self.dask_names):
                break
            if time.monotonic() > deadline:
                raise BootstrapError(
                    f"worker {self.name} is up but did not register with the scheduler in time"
                )
            await asyncio.sleep(0.5)
        reported = await comm.broadcast(msg={"op": "versions"}, workers=mine)
        for info in reported.values():
            check_versions(f"worker {self.name}", info)

    async def close(self) -> None:
        """Retire gracefully first (unless the whole cluster goes): keys move to other workers."""
        cluster = self.cluster
        if cluster.retires_gracefully and cluster.scheduler_comm is not None and not self.lost:
            try:
                await cluster.scheduler_comm.retire_workers(
                    names=sorted(self.dask_names), remove=True, close_workers=True
                )
            except Exception:  # the server goes anyway; its data was replicated or is lost
                log.exception("could not retire %s gracefully", self.name)
        await super().close()


async def _both(first: Awaitable[Any], second: Awaitable[Any]) -> None:
    """Await two things; the first failure cancels the other and is raised."""
    tasks = [asyncio.ensure_future(first), asyncio.ensure_future(second)]
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # raises the failure, if any
    finally:
        for task in tasks:
            task.cancel()
