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
from hcloud import APIException

from .. import __version__
from .errors import ConfigError, HetznerError, from_api

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1"
TOKEN_VARIABLES = ("HETZNER", "HCLOUD_TOKEN")


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
        self.client = hcloud.Client(
            token,
            api_endpoint=endpoint,
            application_name="scherbelberg",
            application_version=__version__,
            timeout=request_timeout,
        )

    async def call(self, doing: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking hcloud call in a thread; API errors become one-line HetznerErrors."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except APIException as exc:
            raise from_api(exc, doing) from exc
        except OSError as exc:  # requests' connection errors are OSErrors
            raise HetznerError(
                f"{doing}: cannot reach the Hetzner API at {self.endpoint}: {exc}"
            ) from exc

    async def request(self, doing: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        result = await self.call(doing, self.client.request, method, path, **kwargs)
        return dict(result)

    async def check_token(self) -> None:
        """One cheap request that fails fast on a missing or wrong token."""
        await self.request("checking the API token", "GET", "/locations", params={"per_page": 1})

    async def wait_for_actions(self, action_ids: list[int], *, deadline: float, doing: str) -> None:
        """Wait until every action succeeded; raise on the first that failed or at the deadline.

        One request per poll for up to 50 actions; the poll interval starts at 0.25 s (actions
        on the local Hetzner finish at once) and backs off to 2 s (real creates take ~10 s).
        """
        pending = list(dict.fromkeys(action_ids))
        give_up = time.monotonic() + deadline
        interval = 0.25
        while pending:
            for chunk_start in range(0, len(pending), 50):
                chunk = pending[chunk_start : chunk_start + 50]
                body = await self.request(
                    doing, "GET", "/actions", params={"id": chunk, "per_page": 50}
                )
                for action in body.get("actions", []):
                    if action["status"] == "success":
                        pending.remove(action["id"])
                    elif action["status"] == "error":
                        error = action.get("error") or {}
                        raise HetznerError(
                            f"{doing}: {action['command']} failed: "
                            f"{error.get('message', 'unknown error')} ({error.get('code')})"
                        )
            if not pending:
                return
            if time.monotonic() + interval > give_up:
                raise HetznerError(f"{doing}: not finished after {deadline:.0f} s")
            await asyncio.sleep(interval)
            interval = min(2.0, interval * 2)
