"""Delete the clusters this process made and did not close, when it ends.

Why: with `LocalCluster`, ending a script without `close()` is harmless, so users do it; with
a cloud cluster it leaves servers billing. distributed's own close at interpreter exit cannot
help: by then the thread pool that runs the (synchronous) hcloud client is shut down
("cannot schedule new futures after shutdown"). So a cluster that its process made and did not
ask to keep (`shutdown_on_close=True`, the default of `HetznerCluster`) is registered here once
it is up, and deleted at exit — a normal end, an uncaught exception, Ctrl-C or SIGTERM — with
plain synchronous HTTP, by its label. Persisted clusters (`create`, `Cluster.from_new`,
`shutdown_on_close=False`, `from_existing`) are never registered.
"""

from __future__ import annotations

import atexit
import logging
import signal
import sys
import threading
import time
import weakref
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from ..hetzner import infra, labels
from ..hetzner.errors import TRANSIENT_CODES

log = logging.getLogger(__name__)

ACTION_SECONDS = 120.0  # waiting for the servers' delete actions
RELEASE_SECONDS = infra.RELEASE_SECONDS  # resource_in_use after the servers went


@dataclass(frozen=True)
class Guarded:
    """What deleting a cluster needs, as plain data (the cluster object may be half torn down
    at exit)."""

    name: str
    token: str
    endpoint: str


_guarded: dict[str, tuple[Guarded, weakref.ref[Any]]] = {}
_lock = threading.Lock()
_installed = False


def install() -> None:
    """Hook process exit: atexit, and SIGTERM as a normal exit. Called where the cluster is
    constructed (usually the main thread; a synchronous cluster starts in its loop's thread,
    where no signal handler can be set)."""
    global _installed
    with _lock:
        if _installed:
            return
        atexit.register(_at_exit)  # after distributed's: runs before it (LIFO)
        _installed = True
    _install_sigterm()


def guard(cluster: Any) -> None:
    """Delete `cluster` at exit unless it is closed first (see `release`)."""
    install()
    with _lock:
        _guarded[cluster.name] = (
            Guarded(cluster.name, cluster.session.token, cluster.session.endpoint),
            weakref.ref(cluster),
        )


def release(name: str) -> None:
    with _lock:
        _guarded.pop(name, None)


def _install_sigterm() -> None:
    """SIGTERM ends Python without atexit; make it a normal exit, unless the program has a
    handler of its own (then it decides)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)  # SystemExit: atexit runs, the status says "terminated"


def _at_exit() -> None:
    with _lock:
        left = list(_guarded.values())
        _guarded.clear()
    for guarded, ref in left:
        print(
            f"scherbelberg: deleting cluster {guarded.name}, which this process made and did "
            "not close (call cluster.close(), or use `with HetznerCluster(...)`)",
            file=sys.stderr,
            flush=True,
        )
        cluster = ref()
        if cluster is not None:
            _mark_closed(cluster)
        try:
            delete_cluster_now(guarded)
        except Exception as exc:
            print(
                f"scherbelberg: could not delete cluster {guarded.name} ({exc}); "
                f"run `scherbelberg destroy {guarded.name}`",
                file=sys.stderr,
                flush=True,
            )
            continue
        from .state import ClusterState

        with suppress(LookupError, ValueError, OSError):
            ClusterState.load(guarded.name).delete()


def _mark_closed(cluster: Any) -> None:
    """distributed closes its clusters at exit too, after us: there is nothing left to do."""
    from distributed.core import Status

    try:
        cluster.status = Status.closed
    except Exception:  # a half-made object: distributed's close then only logs
        log.debug("could not mark %s closed", getattr(cluster, "name", "?"))


def delete_cluster_now(guarded: Guarded) -> None:
    """Delete everything labelled with the cluster, synchronously: servers first (waiting for
    their delete actions), then firewall, network, placement groups and SSH key."""
    from hcloud import APIException, Client

    client = Client(guarded.token, api_endpoint=guarded.endpoint, timeout=15)
    selector = labels.cluster_selector(guarded.name)

    def call(method: str, path: str, until: float, **kwargs: Any) -> dict[str, Any]:
        delay = 1.0
        while True:
            try:
                return dict(client.request(method, path, **kwargs))
            except APIException as exc:
                if exc.code == "not_found":
                    return {}
                retry = exc.code in TRANSIENT_CODES or exc.code == "resource_in_use"
                if not retry or time.monotonic() + delay > until:
                    raise
            except OSError:
                if time.monotonic() + delay > until:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def listed(kind: str) -> list[dict[str, Any]]:
        until = time.monotonic() + 60
        body = call("GET", f"/{kind}", until, params={"label_selector": selector, "per_page": 50})
        return list(body.get(kind, []))

    until = time.monotonic() + ACTION_SECONDS
    actions = []
    for server in listed("servers"):
        body = call("DELETE", f"/servers/{server['id']}", until)
        if body.get("action"):
            actions.append(int(body["action"]["id"]))
    while actions and time.monotonic() < until:
        body = call("GET", "/actions", until, params={"id": actions, "per_page": 50})
        actions = [a["id"] for a in body.get("actions", []) if a["status"] == "running"]
        if actions:
            time.sleep(1.0)
    for kind in infra.RESOURCE_KINDS:
        for item in listed(kind):
            call("DELETE", f"/{kind}/{item['id']}", time.monotonic() + RELEASE_SECONDS)
