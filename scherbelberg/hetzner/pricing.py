"""What a cluster costs, from `GET /pricing`: servers and their primary IPv4 addresses, and
what its environment images cost while they are kept.

Why a module: Hetzner bills each server and, per hour, each server's primary IPv4 address
(hetzner-reality.md, "Billing"); a price that leaves the addresses out is too low. Gross prices
(what users pay), in the currency the API answers with. The one place that adds them up: the
dry run, `HetznerCluster.estimate`, the line a cluster logs at start and `create`'s summary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .lookups import ServerTypeInfo
from .session import HetznerSession

DIGITS = 6  # Hetzner's gross hourly prices have 6 significant decimals (0.001071)


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
    price_monthly: float  # Hetzner caps each server's and address's month at this price
    parts: list[dict[str, Any]]  # {"what", "count", "hourly", "monthly"} per line

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def ipv4_prices(session: HetznerSession) -> dict[str, Ipv4Price]:
    """The gross price of one primary IPv4 address, per location (one request)."""
    return (await _read(session))[1]


async def ipv4_price(session: HetznerSession, location: str) -> Ipv4Price:
    """One primary IPv4 address in `location` (0 if the API lists none there)."""
    currency, found = await _read(session)
    return found.get(location, Ipv4Price(0.0, 0.0, currency))


@dataclass(frozen=True)
class SnapshotPrice:
    """Snapshots are billed per GB of image size and month (`/pricing` → `image`)."""

    per_gb_month: float
    currency: str = "EUR"

    def monthly(self, size_gb: float | None) -> float:
        return (size_gb or 0.0) * self.per_gb_month


async def snapshot_price(session: HetznerSession) -> SnapshotPrice:
    """The gross price of a GB of snapshot per month (one request)."""
    body = await session.request("reading prices", "GET", "/pricing")
    pricing = body.get("pricing", {})
    per_gb = pricing.get("image", {}).get("price_per_gb_month", {}).get("gross", 0.0)
    return SnapshotPrice(float(per_gb), str(pricing.get("currency", "EUR")))


async def _read(session: HetznerSession) -> tuple[str, dict[str, Ipv4Price]]:
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
    return currency, found


def estimate(
    scheduler: ServerTypeInfo, worker: ServerTypeInfo, workers: int, location: str, ipv4: Ipv4Price
) -> Estimate:
    """Servers plus one IPv4 address each, per hour and per month. Totals from the exact
    prices (rounding each line first could be off in the 4th decimal)."""
    parts = [
        (f"scheduler {scheduler.name}", 1, scheduler.price_hourly, scheduler.price_monthly),
        (f"worker {worker.name}", workers, worker.price_hourly, worker.price_monthly),
        ("primary IPv4 address", workers + 1, ipv4.hourly, ipv4.monthly),
    ]
    hourly = sum(count * (price or 0.0) for _, count, price, _ in parts)
    monthly = sum(count * (price or 0.0) for _, count, _, price in parts)
    return Estimate(
        location=location,
        scheduler_server_type=scheduler.name,
        worker_server_type=worker.name,
        workers=workers,
        currency=ipv4.currency,
        price_hourly=round(hourly, DIGITS),
        price_monthly=round(monthly, DIGITS),
        parts=[
            {
                "what": what,
                "count": count,
                "hourly": round(count * (h or 0.0), DIGITS),
                "monthly": round(count * (m or 0.0), DIGITS),
            }
            for what, count, h, m in parts
        ],
    )
