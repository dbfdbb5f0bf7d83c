"""`scherbelberg reap`: delete every cluster of the project whose TTL has passed or that has
been idle too long. Made to run unattended (cron, or the systemd user timer that
`--install-timer` sets up), so that a forgotten cluster stops billing even when nobody looks.

The TTL is read from the clusters' labels, so any machine with the token can reap it. Idleness
needs the scheduler's own answer over mutual TLS, so it is judged only for clusters whose
local state (client certificate) is on this machine; the node reaper (`--reaper node`) covers
the rest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import common

if TYPE_CHECKING:
    from ..cluster.inventory import ClusterInfo
    from ..hetzner.session import HetznerSession

TIMER_NAME = "scherbelberg-reap"
TIMER_EVERY = "1min"


@common.command("reap")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@click.option(
    "--install-timer",
    is_flag=True,
    help="Set up a systemd user timer that runs `scherbelberg reap` every minute, then exit.",
)
@common.output_option
@common.api_options
def reap_command(
    dry_run: bool, install_timer: bool, output: str, endpoint: str | None, token_env: str | None
) -> None:
    """Delete every cluster whose TTL has passed or that has been idle too long.

    TTL and idle timeout are set at creation (`create --ttl 8h --idle-timeout 30m`) and stored
    as labels. Run it from cron or with --install-timer; it prints one line per deleted
    cluster and exits 0 when there was nothing to do.
    """
    if install_timer:
        _install_timer(token_env, endpoint)
        return
    session = common.session(token_env, endpoint)
    reaped = common.run(_reap(session, dry_run))
    if output == "json":
        common.emit_json(reaped)
        return
    for item in reaped:
        verb = "would delete" if dry_run else "deleted"
        click.echo(f"{verb} cluster {item['name']}: {item['reason']}")
    if not reaped:
        click.echo("nothing to reap")


async def _reap(session: HetznerSession, dry_run: bool) -> list[dict[str, Any]]:
    from ..cluster import inventory
    from ..hetzner import infra

    reaped = []
    for info in await inventory.clusters(session):
        if info.name == inventory.UNLABELLED:
            continue
        reason = await _why(info)
        if reason is None:
            continue
        reaped.append({"name": info.name, "reason": reason})
        if dry_run:
            continue
        await infra.delete_cluster(session, info.name, deadline=300)
        if info.state is not None and info.state.endpoint == session.endpoint:
            info.state.delete()
    return reaped


async def _why(info: ClusterInfo) -> str | None:
    lifetime = info.lifetime
    if lifetime.expired():
        return "its TTL has passed"
    if lifetime.idle_timeout is None or info.state is None:
        return None
    idle_for = await _idle_for(info)
    if lifetime.idle_too_long(idle_for):
        return "it has been idle (no tasks, no clients) too long"
    return None


async def _idle_for(info: ClusterInfo) -> float | None:
    """Ask the scheduler (over mutual TLS, with this machine's client certificate)."""
    from distributed.core import rpc

    from ..cluster.lifetime import idle_seconds
    from ..cluster.tls import client_security

    scheduler = next((n for n in info.nodes if n.role == "scheduler"), None)
    if scheduler is None or scheduler.public_ip is None or info.state is None:
        return None
    port = int(info.state.settings.get("scheduler_port", 8786))
    security = client_security(info.state.client_tls())
    try:
        async with rpc(
            f"tls://{scheduler.public_ip}:{port}",
            connection_args=security.get_connection_args("client"),
            timeout=15,
        ) as remote:
            return idle_seconds(await remote.scherbelberg_idle())
    except Exception:  # unreachable right now: the node reaper or a later run decides
        return None


def _install_timer(token_env: str | None, endpoint: str | None) -> None:
    """A systemd user service + timer, and an env file (0600) with what `reap` needs."""
    from platformdirs import user_config_path

    units = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd/user"
    env_file = user_config_path("scherbelberg") / "reap.env"
    program = shutil.which("scherbelberg") or f"{sys.executable} -m scherbelberg"
    env = {
        "HCLOUD_TOKEN": common.token(token_env),
        "HCLOUD_ENDPOINT": common.endpoint(endpoint),
    }
    if os.environ.get("SCHERBELBERG_STATE_DIR"):
        env["SCHERBELBERG_STATE_DIR"] = os.environ["SCHERBELBERG_STATE_DIR"]
    env_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # the token stays on this machine, readable by this user only
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.writelines(f"{key}={value}\n" for key, value in env.items())
    os.chmod(env_file, 0o600)
    units.mkdir(parents=True, exist_ok=True)
    (units / f"{TIMER_NAME}.service").write_text(
        "[Unit]\nDescription=scherbelberg: delete clusters past their TTL or idle timeout\n\n"
        f"[Service]\nType=oneshot\nEnvironmentFile={env_file}\nExecStart={program} reap\n"
    )
    (units / f"{TIMER_NAME}.timer").write_text(
        "[Unit]\nDescription=scherbelberg: reap clusters every minute\n\n"
        f"[Timer]\nOnActiveSec={TIMER_EVERY}\nOnUnitActiveSec={TIMER_EVERY}\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    click.echo(f"wrote {units / TIMER_NAME}.service and .timer, and {env_file} (mode 0600)")
    enable = ["systemctl", "--user", "enable", "--now", f"{TIMER_NAME}.timer"]
    try:
        subprocess.run(["systemctl", "--user", "daemon-reload"], check=True, capture_output=True)
        subprocess.run(enable, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        click.echo(
            f"could not start it here (no systemd user session?): run `{' '.join(enable)}` in "
            f"one, or add `* * * * * {program} reap` to crontab with the variables of {env_file}"
        )
        return
    click.echo(f"{TIMER_NAME}.timer is active: `scherbelberg reap` runs every minute")
