"""What the API app keeps between requests (request log, rate limiters, admin token), and
who is asking: shared by the public handlers (app.py) and the admin API (admin.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .ratelimit import RateLimiter


@dataclass
class RequestRecord:
    """One request as the emulator saw it (for counting API usage in benchmarks)."""

    time: float
    method: str
    path: str
    query: str
    token: str | None
    project_id: int | None
    status: int
    user_agent: str  # which client asked (hcloud-python sends `hcloud-python/<version>`)


class RequestLog:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        self.records.append(record)

    def for_token(self, token: str | None) -> list[RequestRecord]:
        return [r for r in self.records if token is None or r.token == token]


REQUEST_LOG: web.AppKey[RequestLog] = web.AppKey("request_log", RequestLog)
RATE_LIMITERS: web.AppKey[dict[int, RateLimiter]] = web.AppKey("rate_limiters", dict)
ADMIN_TOKEN: web.AppKey[str] = web.AppKey("admin_token", str)
NO_ANSWER_KEY = "no_answer"  # request key: an injected fault closed the connection


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
