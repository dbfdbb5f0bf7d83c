"""`scherbelberg cleanup`: delete what crashed processes left behind."""

from __future__ import annotations

import click

from . import common


@common.command("cleanup")
@common.yes_option
@common.output_option
@common.api_options
def cleanup_command(yes: bool, output: str, endpoint: str | None, token_env: str | None) -> None:
    """Delete scherbelberg resources that belong to no live cluster.

    A cluster is live while it has a scheduler server; the network, firewall, SSH key,
    placement groups and workers of a cluster without one are the leftovers of a crash (for
    example a `create` that was killed). Lists them, then deletes them on confirmation.
    Careful: a `create` running right now has no scheduler for its first seconds either.
    """
    from ..cluster import inventory

    session = common.session(token_env, endpoint)
    found = common.run(inventory.clusters(session))
    orphans = inventory.orphans(found)
    if output == "json" and not yes:
        common.emit_json([r.__dict__ for r in orphans])
        return
    if not orphans:
        click.echo("nothing to clean up")
        return
    common.table(
        ["cluster", "kind", "name", "id"],
        [[r.cluster, r.kind.rstrip("s").replace("_", " "), r.name, r.id] for r in orphans],
        title="orphaned resources",
    )
    common.confirm(f"Delete these {len(orphans)} resources?", yes)
    common.run(inventory.delete(session, orphans, deadline=300))
    for name in sorted({r.cluster for r in orphans}):
        state = common.local_state(name) if name != inventory.UNLABELLED else None
        if state is not None and state.endpoint == session.endpoint:
            state.delete()
    click.echo(f"deleted {len(orphans)} orphaned resources")
