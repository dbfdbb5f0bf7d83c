"""`scherbelberg cleanup`: delete what crashed processes left behind."""

from __future__ import annotations

import click

from . import common


@common.command("cleanup")
@common.yes_option
@common.output_option
@common.api_options
def cleanup_command(yes: bool, output: str, endpoint: str | None, token_env: str | None) -> None:
    """Delete what abandoned or broken clusters left, and local state of vanished ones.

    Every create holds a lease on its resources while it runs and marks the cluster ready
    when it is complete. A cluster that is not ready and whose lease has run out (a `create`
    killed, a machine that went down mid-create), or one that lost its scheduler, is
    incomplete: its servers, network, firewall, SSH key and placement groups are listed, then
    deleted on confirmation. A create in progress is never touched. Local state of clusters
    that no longer exist in the project is removed too.
    """
    from ..cluster import inventory

    session = common.session(token_env, endpoint)
    found = common.run(inventory.clusters(session))
    orphans = inventory.orphans(found)
    stale = inventory.stale_states(found, session.endpoint)
    if output == "json" and not yes:
        common.emit_json(
            {
                "resources": [r.__dict__ for r in orphans],
                "local_states": [state.name for state in stale],
            }
        )
        return
    if not orphans and not stale:
        click.echo("nothing to clean up")
        return
    if orphans:
        common.table(
            ["cluster", "kind", "name", "id"],
            [[r.cluster, r.kind.rstrip("s").replace("_", " "), r.name, r.id] for r in orphans],
            title="resources of incomplete clusters",
        )
    if stale:
        click.echo(
            "local state of clusters that no longer exist: " + ", ".join(s.name for s in stale)
        )
    what = [f"{len(orphans)} resources"] if orphans else []
    what += [f"{len(stale)} local states"] if stale else []
    common.confirm(f"Delete these {' and '.join(what)}?", yes)
    common.run(inventory.delete(session, orphans, deadline=300))
    for name in sorted({r.cluster for r in orphans}):
        state = common.local_state(name) if name != inventory.UNLABELLED else None
        if state is not None and state.endpoint == session.endpoint:
            state.delete()
    for state in stale:
        state.delete()
    click.echo(f"deleted {' and '.join(what)}")
