"""`scherbelberg destroy`: delete clusters by label (works without local state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from . import common

if TYPE_CHECKING:
    from ..hetzner.session import HetznerSession


@common.command("destroy")
@click.argument("names", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Destroy every cluster in the project.")
@common.yes_option
@common.api_options
def destroy_command(
    names: tuple[str, ...], everything: bool, yes: bool, endpoint: str | None, token_env: str | None
) -> None:
    """Delete cluster NAME (servers, network, firewall, placement groups, SSH key) and its
    local state. Resources are found by label, so this works even when the local state is
    gone or the cluster was made on another machine."""
    from ..cluster import inventory
    from ..cluster.state import validate_cluster_name

    if bool(names) == everything:
        raise click.UsageError("give cluster names or --all (not both)")
    for name in names:
        validate_cluster_name(name)
    state = common.local_state(names[0]) if len(names) == 1 else None
    session = common.session(token_env, endpoint, state)
    found = {c.name: c for c in common.run(inventory.clusters(session))}
    if everything:
        targets = sorted(found)
    else:
        unknown = [n for n in names if n not in found and common.local_state(n) is None]
        if unknown:
            raise common.CliError(
                f"no cluster named {unknown[0]!r} in this Hetzner project or in local state"
            )
        targets = list(names)
    if not targets:
        click.echo("no clusters to destroy")
        return
    count = sum(len(found[t].resources) for t in targets if t in found)
    common.confirm(
        f"Delete {'cluster' if len(targets) == 1 else 'clusters'} {', '.join(targets)} "
        f"({count} resources)?",
        yes,
    )
    from ..errors import HetznerError
    from ..hetzner import infra

    async def delete_all() -> dict[str, list[str]]:
        return {t: await infra.delete_cluster(session, t, deadline=300) for t in targets}

    try:
        deleted = common.run(delete_all())
    except HetznerError as exc:
        # transient errors were already retried for a while; say what is left and that a
        # rerun finishes the job (deleting by label is idempotent)
        left = _left(session, targets)
        raise common.CliError(
            f"{exc}; left: {left or 'unknown'}. Run `scherbelberg destroy "
            f"{' '.join(targets)}` again to finish (local state is kept until then)"
        ) from None
    for name in targets:
        state = common.local_state(name)
        if state is not None and (state.endpoint == session.endpoint or not everything):
            state.delete()
        click.echo(f"destroyed {name}: {len(deleted[name])} resources deleted")


def _left(session: HetznerSession, targets: list[str]) -> str:
    """What the project still holds of these clusters, as a short list (or "" if unknown)."""
    from ..cluster import inventory

    try:
        found = common.run(inventory.clusters(session))
    except Exception:
        return ""
    left = [r.what for c in found if c.name in targets for r in c.resources]
    return ", ".join(left) if left else "nothing"
