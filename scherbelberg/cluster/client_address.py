"""This client's public address, for the firewall's allowed sources."""

from __future__ import annotations

import aiohttp

from ..errors import ConfigError


async def client_address(url: str) -> str:
    """This client's public address, as the service at `url` sees it (for firewall rules)."""
    try:
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as response:
            response.raise_for_status()
            return (await response.text()).strip()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ConfigError(
            f"cannot detect this client's address from {url} ({exc}); "
            "set allowed_sources or scherbelberg.client-address-url"
        ) from None
