"""`scherbelberg catalog`: locations and server types with prices, from the API."""

from __future__ import annotations

import click

from . import common


@common.command("catalog")
@click.option(
    "--location", "-l", default=None, help="Prices in this location (default: the configured one)."
)
@click.option("--all", "show_all", is_flag=True, help="Include deprecated server types.")
@common.output_option
@common.api_options
def catalog_command(
    location: str | None, show_all: bool, output: str, endpoint: str | None, token_env: str | None
) -> None:
    """Locations, and server types with cores, memory, architecture and gross prices."""
    from ..cluster import inventory

    session = common.session(token_env, endpoint)
    data = common.run(inventory.catalog(session))
    if output == "json":
        common.emit_json(data)
        return
    if location is None:
        import dask.config

        from .. import config  # noqa: F401 - the scherbelberg config defaults

        location = str(dask.config.get("scherbelberg.location"))
    names = [loc["name"] for loc in data["locations"]]
    if location not in names:
        raise common.CliError(f"unknown location {location!r} (known: {', '.join(names)})")
    common.table(
        ["location", "city", "country", "zone"],
        [[x["name"], x["city"], x["country"], x["network_zone"]] for x in data["locations"]],
        title="locations",
    )
    rows = []
    elsewhere = []  # current types not offered here: named once, not listed as "n/a"
    for t in data["server_types"]:
        # where it is offered: its `locations`, or (an API without them) where it has a price
        offered = t["locations"] or list(t["prices"])
        if t["deprecated"] and not show_all:
            continue
        if location not in offered:
            elsewhere += [] if t["deprecated"] else [t["name"]]
            continue
        price = t["prices"].get(location)
        note = "not orderable now" if location not in t["orderable_in"] else ""
        if t["deprecated"]:
            note = f"deprecated, until {t['unavailable_after'] or '?'}"[:28]
        rows.append(
            [
                t["name"],
                t["architecture"],
                t["cores"],
                f"{t['memory_gb']:g}",
                common.money(price["hourly"]) if price else "-",
                common.money(price["monthly"], 2) if price else "-",
                note,
            ]
        )
    common.table(
        ["type", "arch", "cores", "GB", "€/h", "€/month", "note"],
        rows,
        title=f"server types offered in {location} (gross prices)",
        right=["cores", "GB", "€/h", "€/month"],
    )
    if elsewhere:
        common.console().print(
            f"not offered in {location}: {', '.join(elsewhere)}", markup=False, highlight=False
        )
