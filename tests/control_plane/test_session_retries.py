"""The session's retry budgets (scherbelberg/hetzner/session.py): a refused connection is
retried briefly (an endpoint that refuses is more often wrong than down), then named."""

from __future__ import annotations

from typing import Any

import pytest

from scherbelberg.errors import HetznerError
from scherbelberg.hetzner import session
from scherbelberg.hetzner.session import HetznerSession

NOTHING_LISTENS = "http://127.0.0.1:9/v1"  # loopback's discard port: refused


def counted(api: HetznerSession) -> list[str]:
    """The requests `api` sends, by what they were doing."""
    attempts: list[str] = []
    real = api.call

    async def call(doing: str, *args: Any, **kwargs: Any) -> Any:
        attempts.append(doing)
        return await real(doing, *args, **kwargs)

    api.call = call  # type: ignore[method-assign]
    return attempts


async def test_a_refused_endpoint_is_retried_within_its_budget_then_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # first retry after FIRST_RETRY (1 s); the next would come 2 s later, past the 1.5 s budget
    monkeypatch.setattr(session, "CONNECTION_RETRY_SECONDS", 1.5)
    api = HetznerSession("not-a-token", NOTHING_LISTENS)
    attempts = counted(api)
    with pytest.raises(HetznerError) as raised:
        await api.request("listing locations", "GET", "/locations")
    assert raised.value.code == "connection"
    assert str(raised.value).startswith(
        f"listing locations: cannot reach the Hetzner API at {NOTHING_LISTENS}: "
    )
    assert attempts == ["listing locations"] * 2


async def test_without_a_budget_the_first_refusal_is_final(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "CONNECTION_RETRY_SECONDS", 0.0)
    api = HetznerSession("not-a-token", NOTHING_LISTENS)
    attempts = counted(api)
    with pytest.raises(HetznerError, match="cannot reach"):
        await api.request("listing locations", "GET", "/locations")
    assert attempts == ["listing locations"]
