"""Must show 7: Hetzner's rate limit — 3600 requests, then 429 with RateLimit-Reset."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import requests

from scherbelberg.emulator.control import LocalHetzner


def test_the_3601st_request_is_refused(local_hetzner: LocalHetzner) -> None:
    # a project of its own: after this test its allowance is spent
    project_token = local_hetzner.control.new_project()
    # freeze the refill clock so "within the window" is exact, not a race with the 1/s refill
    local_hetzner.control.freeze_rate_limit(project_token)
    url = local_hetzner.endpoint + "/locations?per_page=1"
    headers = {"Authorization": f"Bearer {project_token}"}

    async def hammer() -> tuple[list[int], aiohttp.ClientResponse, dict[str, Any]]:
        statuses: list[int] = []
        async with aiohttp.ClientSession(headers=headers) as session:

            async def one() -> None:
                async with session.get(url) as response:
                    statuses.append(response.status)
                    await response.read()

            for _ in range(36):  # 3600 requests, 100 at a time
                await asyncio.gather(*(one() for _ in range(100)))
            async with session.get(url) as last:
                body = await last.json()
                return statuses, last, body

    statuses, last, body = asyncio.run(hammer())
    assert statuses.count(200) == 3600
    assert last.status == 429
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert last.headers["RateLimit-Limit"] == "3600"
    assert last.headers["RateLimit-Remaining"] == "0"
    reset = int(last.headers["RateLimit-Reset"])
    # the allowance refills at one request per second: full again in about an hour
    assert time.time() + 3500 < reset < time.time() + 3700

    # another project is not affected: limits are per project
    other = local_hetzner.control.new_project()
    response = requests.get(url, headers={"Authorization": f"Bearer {other}"}, timeout=30)
    assert response.status_code == 200
    assert response.headers["RateLimit-Remaining"] == "3599"

    # once time moves on, the allowance refills by one per second
    local_hetzner.control.freeze_rate_limit(project_token, frozen=False)
    time.sleep(2.1)
    response = requests.get(url, headers=headers, timeout=30)
    assert response.status_code == 200
