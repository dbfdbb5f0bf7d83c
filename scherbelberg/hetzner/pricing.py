"""What a cluster costs, from `GET /pricing`: servers and their primary IPv4 addresses.

Why a module: Hetzner bills each server and, per hour, each server's primary IPv4 address
(hetzner-reality.md, "Billing"); a price that leaves the addresses out is too low. Gross prices
(what users pay), in the currency the API answers with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .catalog import ServerTypeInfo
from .session import HetznerSession


@dataclass(frozen=True)
class Ipv4Price:
    hourly: float
    monthly: float
    currency: str = "EUR"


@dataclass(frozen=True)
class Estimate:
    """The price of a cluster of one scheduler and `workers` workers (no server is made)."""

    location: str
    scheduler_server_type: str
    worker_server_type: str
    workers: int
    currency: str
    price_hourly: float
    price_monthly: float
    parts: list[dict[str, Any]]  # {"what", "count", "hourly", "monthly"} per line

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def ipv4_prices(session: HetznerSession) -> dict[str, Ipv4Price]:
    """The gross price of one primary IPv4 address, per location (one request)."""
    body = await session.request("reading prices", "GET", "/pricing")
    pricing = body.get("pricing", {})
    currency = str(pricing.get("currency", "EUR"))
    found = {}
    for entry in pricing.get("primary_ips", []):
        if entry.get("type") == "ipv4":
            for price in entry.get("prices", []):
                found[price["location"]] = Ipv4Price(
                    float(price["price_hourly"]["gross"]),
                    float(price["price_monthly"]["gross"]),
                    currency,
                )
    return found


async def ipv4_price(session: HetznerSession, location: str) -> Ipv4Price:
    """One primary IPv4 address in `location` (0 if the API lists none there)."""
    return (await ipv4_prices(session)).get(location, Ipv4Price(0.0, 0.0))


def estimate(
    scheduler: ServerTypeInfo, worker: ServerTypeInfo, workers: int, location: str, ipv4: Ipv4Price
) -> Estimate:
    """Servers plus one IPv4 address each, per hour and per month (Hetzner caps a month)."""
    parts = [
        _part(f"scheduler {scheduler.name}", 1, scheduler.price_hourly, scheduler.price_monthly),
        _part(f"worker {worker.name}", workers, worker.price_hourly, worker.price_monthly),
        _part("primary IPv4 address", workers + 1, ipv4.hourly, ipv4.monthly),
    ]
    return Estimate(
        location=location,
        scheduler_server_type=scheduler.name,
        worker_server_type=worker.name,
        workers=workers,
        currency=ipv4.currency,
        price_hourly=round(sum(p["hourly"] for p in parts), 4),
        price_monthly=round(sum(p["monthly"] for p in parts), 2),
        parts=parts,
    )


def _part(what: str, count: int, hourly: float | None, monthly: float | None) -> dict[str, Any]:
    return {
        "what": what,
        "count": count,
        "hourly": round(count * (hourly or 0.0), 4),
        "monthly": round(count * (monthly or 0.0), 4),
    }
