"""One place to talk to the Hetzner API: the hcloud client, off the event loop, with deadlines.

hcloud-python is synchronous; every call runs in a worker thread so that the event loop (and
Dask's) never blocks. Actions of many servers are awaited together: one `GET /actions?id=…`
request per poll for all of them, at a poll interval that backs off — Hetzner allows 3600
requests an hour per project, so polling each server every 0.1 s (as others do) is a bug.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import hcloud
import requests
from hcloud import APIException

from ..errors import ConfigError, HetznerError
from ..version import __version__
from .error_codes import NOT_CARRIED_OUT, TRANSIENT_CODES, from_api
from .labels import CLUSTER as CLUSTER_LABEL

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1"
TOKEN_VARIABLES = ("HETZNER", "HCLOUD_TOKEN")
FIRST_POLL = 1.0  # seconds before the first action poll
MAX_POLL = 4.0
RETRY_SECONDS = 60.0  # how long one request is retried through transient errors
CONNECTION_RETRY_SECONDS = 4.0  # … and through lost connections
FIRST_RETRY = 1.0
MAX_RETRY = 10.0


def resolve_token(token: str | None = None, variable: str | None = None) -> str:
    """The API token: the argument, else `$variable` / HETZNER / HCLOUD_TOKEN, else dask config."""
    if token:
        return token
    names = (variable,) if variable else TOKEN_VARIABLES
    for name in names:
        value = os.environ.get(name, "").strip() if name else ""
        if value:
            return value
    import dask.config

    configured = dask.config.get("scherbelberg.token", None)
    if configured:
        return str(configured)
    raise ConfigError(
        "no Hetzner API token: set " + " or ".join(n for n in names if n) + " (or pass token=)"
    )


def resolve_endpoint(endpoint: str | None = None) -> str:
    if endpoint:
        return endpoint.rstrip("/")
    import dask.config

    configured = dask.config.get("scherbelberg.api-endpoint", None)
    return str(configured or os.environ.get("HCLOUD_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


class HetznerSession:
    """The hcloud client plus the async helpers the cluster code needs."""

    def __init__(self, token: str, endpoint: str, *, request_timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self.token = token  # only for a node reaper the user asked for (reaper="node")
        self.client = hcloud.Client(
            token,
            api_endpoint=endpoint,
            application_name="scherbelberg",
            application_version=__version__,
            timeout=request_timeout,
        )
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._doing: dict[int, str] = {}
        self._interval = FIRST_POLL
        self._poller: asyncio.Task[None] | None = None

    async def call(self, doing: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking hcloud call in a thread; API errors become one-line HetznerErrors."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except APIException as exc:
            raise from_api(exc, doing) from exc
        except requests.exceptions.Timeout as exc:  # after hcloud-python's own retries
            raise HetznerError(
                f"{doing}: the Hetzner API did not answer in time", "timeout"
            ) from exc
        except OSError as exc:  # requests' connection errors are OSErrors
            raise HetznerError(
                f"{doing}: cannot reach the Hetzner API at {self.endpoint}: {exc}", "connection"
            ) from exc

    async def request(
        self,
        doing: str,
        method: str,
        path: str,
        *,
        retry_for: float | None = None,
        in_use_is_transient: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One API request, retried with backoff for `retry_for` seconds (default RETRY_SECONDS)
        where Hetzner's own clients retry: 429, 409 conflict, locked, 5xx, timeouts and lost
        connections (a POST only where the answer says it was not carried out).
        `in_use_is_transient`: also 422 resource_in_use, which Hetzner answers for a few
        seconds after deleting the servers a firewall, network or placement group was
        attached to."""
        retry_for = RETRY_SECONDS if retry_for is None else retry_for
        started = time.monotonic()
        delay = FIRST_RETRY
        while True:
            try:
                result = await self.call(doing, self.client.request, method, path, **kwargs)
                return dict(result)
            except HetznerError as exc:
                if not _retryable(exc, method, in_use_is_transient):
                    raise
                # an endpoint that refuses connections is more often wrong than down
                budget = CONNECTION_RETRY_SECONDS if exc.code == "connection" else retry_for
                if time.monotonic() + delay > started + min(budget, retry_for):
                    raise
                log.info("%s: %s; retrying in %.0f s", doing, exc.code, delay)
            await asyncio.sleep(delay)
            delay = min(MAX_RETRY, delay * 2)

    async def create(self, doing: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /{kind} of a named resource (server, SSH key, network, firewall, placement
        group), through transient errors too.

        A 5xx or a timeout leaves it open whether Hetzner made the resource. Names are unique
        in a project, so the request is repeated; if the repeat finds the name taken by a
        resource with this cluster's label, that is the one the first request made: adopted
        (without its create action; the caller's own wait covers the boot).
        """
        started = time.monotonic()
        delay = FIRST_RETRY
        unsure = False
        while True:
            try:
                return await self.request(doing, "POST", f"/{kind}", json=body)
            except HetznerError as exc:
                if exc.code == "uniqueness_error" and unsure:
                    adopted = await self._adopt(doing, kind, body)
                    if adopted is not None:
                        return adopted
                    raise
                if exc.code not in TRANSIENT_CODES:
                    raise
                if time.monotonic() + delay > started + RETRY_SECONDS:
                    raise
                unsure = True
                log.info("%s: %s; trying again in %.0f s", doing, exc.code, delay)
            await asyncio.sleep(delay)
            delay = min(MAX_RETRY, delay * 2)

    async def _adopt(self, doing: str, kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
        found = await self.request(doing, "GET", f"/{kind}", params={"name": body["name"]})
        wanted = (body.get("labels") or {}).get(CLUSTER_LABEL)
        for item in found.get(kind, []):
            if wanted is not None and (item.get("labels") or {}).get(CLUSTER_LABEL) == wanted:
                return {kind.removesuffix("s"): item}
        return None

    async def check_token(self) -> None:
        """One cheap request that fails fast on a missing or wrong token."""
        await self.request("checking the API token", "GET", "/locations", params={"per_page": 1})

    async def wait_for_actions(self, action_ids: list[int], *, deadline: float, doing: str) -> None:
        """Wait until every action succeeded; raise on the first that failed or at the deadline.

        All waiters of this session share one poller: one `GET /actions?id=…` request per
        poll for every pending action of every server (50 per request). Polls come after 1, 3,
        7 s and then every 4 s (a real create takes ~10 s); callers do other waiting (SSH,
        bootstrap) meanwhile, so the lag costs no time, and every request counts against
        Hetzner's 3600 per hour.
        """
        ids = list(dict.fromkeys(action_ids))
        if not ids:
            return
        loop = asyncio.get_running_loop()
        futures = []
        for action_id in ids:
            future = self._pending.get(action_id)
            if future is None or future.done():
                future = loop.create_future()
                # its waiters may all be gone (a node scaled away mid-create): a failure nobody
                # awaits any more is not an "exception was never retrieved" error
                future.add_done_callback(_retrieve)
                self._pending[action_id] = future
                self._doing[action_id] = doing
            futures.append(future)
        if self._poller is None or self._poller.done():
            self._interval = FIRST_POLL
            self._poller = loop.create_task(self._poll())
        try:
            # asyncio.wait, not gather: a waiter that is cancelled (a node scaled away while
            # it starts) must not cancel the futures other waiters share
            done, _ = await asyncio.wait(
                futures, timeout=deadline, return_when=asyncio.FIRST_EXCEPTION
            )
            for future in done:
                future.result()  # the first failed action raises
            if len(done) < len(futures):
                raise HetznerError(f"{doing}: not finished after {deadline:.0f} s")
        finally:
            for action_id in ids:
                future = self._pending.get(action_id)
                if future is not None and future.done():
                    self._pending.pop(action_id, None)
                    self._doing.pop(action_id, None)

    async def _poll(self) -> None:
        while any(not f.done() for f in self._pending.values()):
            await asyncio.sleep(self._interval)
            self._interval = min(MAX_POLL, self._interval * 2)
            waiting = [i for i, f in self._pending.items() if not f.done()]
            for start in range(0, len(waiting), 50):
                chunk = waiting[start : start + 50]
                try:
                    body = await self.request(
                        "waiting for actions",
                        "GET",
                        "/actions",
                        params={"id": chunk, "per_page": 50},
                    )
                except HetznerError as exc:
                    if exc.code in TRANSIENT_CODES:
                        # the actions did not fail, a poll did: poll again (each waiter has
                        # its own deadline), instead of failing every node that waits on it
                        log.info("polling actions failed (%s); polling again", exc.code)
                        continue
                    for action_id in chunk:
                        future = self._pending.get(action_id)
                        if future is not None and not future.done():
                            future.set_exception(exc)
                    continue
                for action in body.get("actions", []):
                    future = self._pending.get(action["id"])
                    if future is None or future.done():
                        continue
                    if action["status"] == "success":
                        future.set_result(None)
                    elif action["status"] == "error":
                        error = action.get("error") or {}
                        future.set_exception(
                            HetznerError(
                                f"{self._doing.get(action['id'], 'waiting')}: "
                                f"{action['command']} failed: "
                                f"{error.get('message', 'unknown error')} ({error.get('code')})",
                                error.get("code"),
                            )
                        )


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _retryable(exc: HetznerError, method: str, in_use_is_transient: bool) -> bool:
    if in_use_is_transient and exc.code == "resource_in_use":
        return True
    if method.upper() == "POST":  # not idempotent: only when nothing was done
        return exc.code in NOT_CARRIED_OUT
    return exc.code in TRANSIENT_CODES
