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
import os
import signal
import sys
import threading
import time
import weakref
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from ..hetzner import infra, labels
from ..hetzner.error_codes import TRANSIENT_CODES

ACTION_SECONDS = 120.0  # for the servers' deletion (requests and their delete actions)
RELEASE_SECONDS = infra.RELEASE_SECONDS  # for the rest: `resource_in_use` after the servers
LIST_SECONDS = 60.0  # for one listing, through transient errors
REQUEST_SECONDS = 15.0  # for one HTTP request
PER_PAGE = 50  # the API's largest page (listings, and ids per `GET /actions`)


@dataclass(frozen=True)
class Guarded:
    """What deleting a cluster needs, as plain data (the cluster object may be half torn down
    at exit)."""

    name: str
    token: str
    endpoint: str


_guarded: dict[str, tuple[Guarded, weakref.ref[Any]]] = {}
# reentrant: the SIGTERM handler runs in the main thread, which (asynchronous clusters) may be
# inside `guard` or `release` at that moment
_lock = threading.RLock()
_installed = False
_deleting = False  # a deletion is under way: a SIGTERM now waits for it
_terminated = False  # a SIGTERM came during a deletion at exit: die of it afterwards


def install() -> None:
    """Hook process exit: atexit, and SIGTERM. Called where the cluster is constructed
    (usually the main thread; a synchronous cluster starts in its loop's thread, where no
    signal handler can be set)."""
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
    """SIGTERM ends Python without atexit. Only where the program has no handler of its own
    (then it decides) and only in the main thread (Python's rule)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: Any) -> None:
    """Delete what is guarded, then die of the signal as without this handler (a shell shows
    128 + 15): nothing else changes. Another SIGTERM meanwhile lets the deletion finish (every
    wait in it has a deadline); SIGKILL still ends it at once."""
    global _terminated
    if _deleting:
        _terminated = True
        return
    _delete_all()
    _die(signum)


def _die(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # only if the signal is blocked in this thread


def _at_exit() -> None:
    _delete_all()
    if _terminated:
        _die(signal.SIGTERM)


def _delete_all() -> None:
    """Delete every guarded cluster: one line on stderr each, then its resources and its
    local state. A Ctrl-C here stops, saying what is left."""
    global _deleting
    with _lock:
        left = list(_guarded.values())
        _guarded.clear()
    _deleting = True
    try:
        for number, (guarded, ref) in enumerate(left):
            _say(
                f"deleting cluster {guarded.name}, which this process made and did not close "
                "(call cluster.close(), or use `with HetznerCluster(...)`)"
            )
            cluster = ref()
            if cluster is not None:
                _mark_closed(cluster)
            try:
                delete_cluster_now(guarded)
            except KeyboardInterrupt:
                for rest, _ in left[number:]:
                    _say(f"interrupted: `scherbelberg destroy {rest.name}` deletes what is left")
                return
            except Exception as exc:
                hint = f"`scherbelberg destroy {guarded.name}` deletes what is left"
                _say(f"could not delete cluster {guarded.name} ({exc}); {hint}")
                continue
            from .state import ClusterState

            with suppress(LookupError, ValueError, OSError):
                ClusterState.load(guarded.name).delete()
    finally:
        _deleting = False


def _say(line: str) -> None:
    with suppress(OSError, ValueError):  # stderr may be closed by now
        print(f"scherbelberg: {line}", file=sys.stderr, flush=True)


def _mark_closed(cluster: Any) -> None:
    """Stop its own watchers (self-healing, TTL, adapt: they run while the status is
    `running`) before its servers go, and let distributed's close at exit, which runs after
    us, skip it: there is nothing left to close."""
    from distributed.core import Status

    with suppress(Exception):  # a half-made object: distributed's close then only logs
        cluster.status = Status.closed


def delete_cluster_now(guarded: Guarded) -> None:
    """Delete everything labelled with the cluster, synchronously, in `infra.delete_cluster`'s
    order: servers first (waiting for their delete actions), then `infra.RESOURCE_KINDS`."""
    from hcloud import Client

    client = Client(
        guarded.token,
        api_endpoint=guarded.endpoint,
        application_name="scherbelberg",
        timeout=REQUEST_SECONDS,
    )
    selector = labels.cluster_selector(guarded.name)
    until = time.monotonic() + ACTION_SECONDS
    actions = []
    for server in _listed(client, "servers", selector):
        body = _call(client, "DELETE", f"/servers/{server['id']}", until)
        if body.get("action"):
            actions.append(int(body["action"]["id"]))
    _wait(client, actions, until)
    until = time.monotonic() + RELEASE_SECONDS
    for kind in infra.RESOURCE_KINDS:
        for item in _listed(client, kind, selector):
            _call(client, "DELETE", f"/{kind}/{item['id']}", until)


def _call(client: Any, method: str, path: str, until: float, **kwargs: Any) -> dict[str, Any]:
    """One request, retried until `until` where Hetzner's own clients retry (errors.py), and
    through 422 `resource_in_use`, which Hetzner answers for a few seconds after deleting the
    servers a firewall, network or placement group was attached to. Gone already is done."""
    from hcloud import APIException

    delay = 1.0
    while True:
        try:
            return dict(client.request(method, path, **kwargs) or {})
        except APIException as exc:
            if exc.code == "not_found" and method == "DELETE":
                return {}
            if exc.code not in TRANSIENT_CODES and exc.code != "resource_in_use":
                raise
            if time.monotonic() + delay > until:
                raise
        except OSError:  # requests' connection errors and timeouts
            if time.monotonic() + delay > until:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


def _listed(client: Any, kind: str, selector: str) -> list[dict[str, Any]]:
    until = time.monotonic() + LIST_SECONDS
    items: list[dict[str, Any]] = []
    page: int | None = 1
    while page is not None:
        params = {"label_selector": selector, "page": page, "per_page": PER_PAGE}
        body = _call(client, "GET", f"/{kind}", until, params=params)
        items += body.get(kind, [])
        page = body.get("meta", {}).get("pagination", {}).get("next_page")
    return items


def _wait(client: Any, actions: list[int], until: float) -> None:
    """Until no action is running (a failed one too: what it leaves, the rest's retries of
    `resource_in_use` and then the error message show), or `until`."""
    while actions and time.monotonic() < until:
        running = []
        for start in range(0, len(actions), PER_PAGE):
            ids = actions[start : start + PER_PAGE]
            body = _call(client, "GET", "/actions", until, params={"id": ids, "per_page": PER_PAGE})
            running += [a["id"] for a in body.get("actions", []) if a["status"] == "running"]
        actions = running
        if actions:
            time.sleep(1.0)
