"""`scherbelberg image`: environment images (snapshots whose nodes skip the env install)."""

from __future__ import annotations

import time
from typing import Any

import click

from . import common


@click.group("image", context_settings={"help_option_names": ["-h", "--help"]})
def image_command() -> None:
    """Environment images: snapshots that already hold this client's Python environment.

    Use one with `HetznerCluster(image=ID, preinstalled=True)`, or with `scherbelberg create
    --image ID` and `DASK_SCHERBELBERG__ENV__PREINSTALLED=true`.
    """


@common.command("build")
@click.option("--location", "-l", default=None, help="Hetzner location, e.g. fsn1.")
@click.option(
    "--server-type",
    default="cx23",
    show_default=True,
    help="Type of the temporary server (its architecture is the image's; larger types can use it).",
)
@click.option("--base-image", default=None, help="System image to start from (default: config).")
@click.option("--env", "env_method", type=click.Choice(["auto", "pip", "conda"]), default=None)
@click.option(
    "--package", "-p", "packages", multiple=True, help="Extra package for the env (repeatable)."
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Seconds the install may take (default: the bootstrap timeout).",
)
@common.output_option
@common.api_options
def build_command(
    location: str | None,
    server_type: str,
    base_image: str | None,
    env_method: str | None,
    packages: tuple[str, ...],
    timeout: float | None,
    output: str,
    endpoint: str | None,
    token_env: str | None,
) -> None:
    """Build an environment image on a temporary server; print its snapshot id.

    The server, its SSH key and firewall are deleted afterwards (also on failure). The
    snapshot is billed by Hetzner until `scherbelberg image delete ID`.
    """
    from ..cluster import env_images, settings

    s = settings.resolve(
        location=location,
        image=base_image,
        env_method=env_method,
        extra_packages=list(packages) or None,
        preinstalled=False,
    )
    session = common.session(token_env, endpoint)
    err = common.console(stderr=True)
    image_id = common.run(
        env_images.build_env_image(
            session,
            env=s.env,
            location=s.location,
            server_type=server_type,
            base_image=s.image_name,
            deadline=timeout or s.timeouts["bootstrap"],
            allowed_sources=s.allowed_sources,
            client_address_url=s.client_address_url,
            action_deadline=s.timeouts["action"],
            snapshot_deadline=s.timeouts["snapshot"],
            extra_labels=s.labels,
            progress=lambda message: err.print(message),
        )
    )
    if output == "json":
        found = common.run(env_images.list_env_images(session))
        made = next(i for i in found if i.id == image_id)
        common.emit_json({"id": image_id, "env_hash": made.env_hash})
    else:
        click.echo(image_id)


@common.command("ls")
@common.output_option
@common.api_options
def ls_command(output: str, endpoint: str | None, token_env: str | None) -> None:
    """List the environment images in the project, with what each costs per month.

    `match` marks those made for this client's environment."""
    from ..cluster import settings

    session = common.session(token_env, endpoint)
    found, price = common.run(images_and_price(session))
    mine = settings.resolve().env  # the configured env method and extras
    rows = [_row(image, image.matches(mine), price) for image in found]
    if output == "json":
        common.emit_json(rows)
        return
    if not rows:
        click.echo("no environment images")
        return
    total = sum(r["monthly_cost"] for r in rows)
    common.table(
        ["id", "env", "match", "python", "base", "arch", "GB", "/month", "last used", "status"],
        [
            [
                r["id"],
                r["env_hash"],
                "yes" if r["matches_this_client"] else "",
                r["python"],
                r["base_image"],
                r["architecture"],
                r["image_size_gb"],
                f"{r['monthly_cost']:.2f} {r['currency']}",
                _ago(r["last_used"]),
                r["status"],
            ]
            for r in rows
        ],
        title=f"environment images: {total:.2f} {price.currency}/month, billed until deleted "
        "(scherbelberg image prune)",
        right=["id", "GB", "/month"],
        optional=["base", "status", "last used", "python"],
    )


async def images_and_price(session: Any) -> tuple[list[Any], Any]:
    """The environment images in the project, and the snapshot price (for `ls` too)."""
    from ..cluster import env_images
    from ..hetzner import pricing

    return await env_images.list_env_images(session), await pricing.snapshot_price(session)


def _row(image: Any, match: bool, price: Any) -> dict[str, Any]:
    return {
        "id": image.id,
        "env_hash": image.env_hash,
        "matches_this_client": match,
        "python": image.python,
        "base_image": image.base_image,
        "architecture": image.architecture,
        "status": image.status,
        "created": image.created,
        "last_used": image.last_used,
        "image_size_gb": image.image_size_gb,
        "monthly_cost": round(price.monthly(image.image_size_gb), 4),
        "currency": price.currency,
        "description": image.description,
    }


def _ago(when: float) -> str:
    from ..cluster.lifetime import format_duration

    seconds = max(0.0, time.time() - when)
    return f"{format_duration(seconds)} ago" if seconds >= 60 else "just now"


@common.command("prune")
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Keep this many of the newest images of each environment.",
)
@click.option(
    "--unused-for",
    default="30d",
    show_default=True,
    help="Also delete images no cluster has booted from for this long (e.g. 7d, 12h); "
    "'never' keeps them.",
)
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
@common.yes_option
@common.output_option
@common.api_options
def prune_command(
    keep: int,
    unused_for: str,
    dry_run: bool,
    yes: bool,
    output: str,
    endpoint: str | None,
    token_env: str | None,
) -> None:
    """Delete environment images that are not needed: all but the newest --keep of each
    environment, and those unused for --unused-for. Images being made are never deleted."""
    from ..cluster import env_images
    from ..cluster.lifetime import parse_duration

    unused = None if unused_for == "never" else parse_duration(unused_for, "--unused-for")
    session = common.session(token_env, endpoint)
    found, price = common.run(images_and_price(session))
    plan = env_images.prune_plan(found, keep=keep, unused_for=unused, now=time.time())
    rows = [
        {**_row(image, False, price), "reason": reason, "deleted": not dry_run}
        for image, reason in plan
    ]
    if not plan:
        if output == "json":
            common.emit_json([])
        else:
            click.echo("nothing to prune")
        return
    saving = sum(r["monthly_cost"] for r in rows)
    if output != "json":
        for r in rows:
            click.echo(f"image {r['id']} ({r['env_hash']}, {r['image_size_gb']} GB): {r['reason']}")
    if not dry_run:
        common.confirm(
            f"Delete {len(plan)} environment image(s), saving {saving:.2f} {price.currency}/month?",
            yes,
        )

        async def delete_all() -> None:
            for image, _reason in plan:
                await env_images.delete_env_image(session, image.id)

        common.run(delete_all())
    if output == "json":
        common.emit_json(rows)
    else:
        verb = "would delete" if dry_run else "deleted"
        click.echo(f"{verb} {len(plan)} image(s): {saving:.2f} {price.currency}/month")


@common.command("delete")
@click.argument("image_ids", nargs=-1, required=True, type=int)
@common.yes_option
@common.api_options
def delete_command(
    image_ids: tuple[int, ...], yes: bool, endpoint: str | None, token_env: str | None
) -> None:
    """Delete environment images by id (only snapshots scherbelberg made)."""
    from ..cluster import env_images

    session = common.session(token_env, endpoint)
    common.confirm(f"Delete environment image(s) {', '.join(map(str, image_ids))}?", yes)

    async def delete_all() -> None:
        for image_id in image_ids:
            await env_images.delete_env_image(session, image_id)

    common.run(delete_all())
    for image_id in image_ids:
        click.echo(f"deleted image {image_id}")


image_command.add_command(build_command)
image_command.add_command(ls_command)
image_command.add_command(delete_command)
image_command.add_command(prune_command)
