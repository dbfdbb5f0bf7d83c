"""`scherbelberg image`: environment images (snapshots whose nodes skip the env install)."""

from __future__ import annotations

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
@click.option("--env", "env_method", type=click.Choice(["pip", "conda"]), default=None)
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
    from ..cluster import images, settings

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
        images.build_env_image(
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
        common.emit_json({"id": image_id, "env_hash": images.env_hash(s.env)})
    else:
        click.echo(image_id)


@common.command("ls")
@common.output_option
@common.api_options
def ls_command(output: str, endpoint: str | None, token_env: str | None) -> None:
    """List the environment images in the project; `match` marks those for this client."""
    from ..cluster import images, settings

    session = common.session(token_env, endpoint)
    found = common.run(images.list_env_images(session))
    mine = images.env_hash(settings.resolve().env)  # the configured env method and extras
    rows = [
        {
            "id": int(i["id"]),
            "env_hash": (i.get("labels") or {}).get(images.ENV_IMAGE),
            "matches_this_client": (i.get("labels") or {}).get(images.ENV_IMAGE) == mine,
            "description": i.get("description"),
            "architecture": i.get("architecture"),
            "status": i.get("status"),
            "created": i.get("created"),
            "image_size_gb": i.get("image_size"),
        }
        for i in found
    ]
    if output == "json":
        common.emit_json(rows)
        return
    if not rows:
        click.echo("no environment images")
        return
    common.table(
        ["id", "env", "match", "arch", "status", "GB", "created", "description"],
        [
            [
                r["id"],
                r["env_hash"],
                "yes" if r["matches_this_client"] else "",
                r["architecture"],
                r["status"],
                r["image_size_gb"],
                r["created"],
                r["description"],
            ]
            for r in rows
        ],
        title="environment images",
        right=["id", "GB"],
    )


@common.command("delete")
@click.argument("image_ids", nargs=-1, required=True, type=int)
@common.yes_option
@common.api_options
def delete_command(
    image_ids: tuple[int, ...], yes: bool, endpoint: str | None, token_env: str | None
) -> None:
    """Delete environment images by id (only snapshots scherbelberg made)."""
    from ..cluster import images

    session = common.session(token_env, endpoint)
    common.confirm(f"Delete environment image(s) {', '.join(map(str, image_ids))}?", yes)

    async def delete_all() -> None:
        for image_id in image_ids:
            await images.delete_env_image(session, image_id)

    common.run(delete_all())
    for image_id in image_ids:
        click.echo(f"deleted image {image_id}")


image_command.add_command(build_command)
image_command.add_command(ls_command)
image_command.add_command(delete_command)
