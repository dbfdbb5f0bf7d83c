"""Nodes whose servers are real (the local Hetzner's API) but whose Dask runs in this process.

`HetznerCluster` builds its nodes from `scheduler_class` / `worker_class`; these subclasses
keep everything that talks to the API (create, wait for actions, placement, delete) and
replace only the boot: instead of SSH to a server that ran cloud-init, a `distributed`
Scheduler or Worker starts here on 127.0.0.1 with the certificate the node would have got.
So the client's comm, registration, retirement and scale-down run for real, in seconds.
"""

from __future__ import annotations

import asyncio
import itertools

from distributed import Scheduler, Security, Worker

from scherbelberg import HetznerCluster
from scherbelberg.bootstrap.cloud_config import NodeTls
from scherbelberg.cluster.nodes import HetznerScheduler, HetznerWorker

# scheduler server name -> its local scheduler: workers and re-attached clusters find it here
RUNNING: dict[str, Scheduler] = {}
# Scheduler and Worker serve HTTP (health, metrics) even without a dashboard, by default on
# every interface (the scheduler on 8787): here on loopback, on a free port
LOOPBACK_HTTP = "127.0.0.1:0"
WORKERS: dict[str, list[Worker]] = {}  # worker server name -> its Dask workers


def security(tls: NodeTls, role: str) -> Security:
    return Security(
        tls_ca_file=tls.ca_pem,
        require_encryption=True,
        **{f"tls_{role}_cert": tls.cert_pem, f"tls_{role}_key": tls.key_pem},
    )


async def scheduler_address(name: str, deadline: float = 30.0) -> str:
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline
    while name not in RUNNING:
        if loop.time() > until:
            raise TimeoutError(f"no local scheduler {name}")
        await asyncio.sleep(0.05)
    return str(RUNNING[name].address)


class LocalScheduler(HetznerScheduler):
    async def wait_bootstrapped(self) -> None:
        scheduler = Scheduler(
            host="127.0.0.1",
            port=0,
            dashboard=False,
            dashboard_address=LOOPBACK_HTTP,
            security=security(self.tls_for_node(), "scheduler"),
            validate=True,
        )
        await scheduler
        RUNNING[self.name] = scheduler

    def _addresses(self) -> None:
        self.address = self.external_address = str(RUNNING[self.name].address)

    async def attach(self) -> None:
        await scheduler_address(self.name)

    async def after_start(self) -> None:
        self._addresses()

    async def destroy_vm(self) -> None:
        await super().destroy_vm()
        scheduler = RUNNING.pop(self.name, None)
        if scheduler is not None:
            await scheduler.close()


HOSTS = itertools.count(2)  # 127.0.0.2, .3, ...: one loopback address per worker server


class LocalWorker(HetznerWorker):
    async def wait_bootstrapped(self) -> None:
        """The server's Dask workers, on an address of its own (as a real server's private
        address): the scheduler groups a server's processes by host."""
        address = await scheduler_address(f"{self.cluster.name}-scheduler")
        host = f"127.0.0.{next(HOSTS) % 250 + 2}"
        workers = [
            Worker(
                address,
                name=name,
                nthreads=1,
                security=security(self.tls_for_node(), "worker"),
                host=host,
                dashboard=False,
                dashboard_address=LOOPBACK_HTTP,
                memory_limit=0,
            )
            for name in sorted(self.dask_names)
        ]
        await asyncio.gather(*workers)
        WORKERS[self.name] = workers

    async def destroy_vm(self) -> None:
        await super().destroy_vm()
        for worker in WORKERS.pop(self.name, []):
            await worker.close()


class LocalCluster(HetznerCluster):
    """A HetznerCluster whose nodes boot into local Dask processes."""

    scheduler_class = LocalScheduler
    worker_class = LocalWorker
