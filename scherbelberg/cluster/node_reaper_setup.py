"""Put the reaper on the scheduler node (`reaper="node"`), over SSH, after it booted.

Why SSH and not user_data: user_data is readable by anything on the node that can reach the
metadata service and is kept by Hetzner; the token must never be in it. Over the pinned-key SSH
connection the token is written through stdin (never a command line) into a root-only file.
What runs there is `bootstrap/node_reaper.py` (standard library only) from a systemd timer.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bootstrap import node_reaper
from ..errors import ScherbelbergError
from . import ssh

if TYPE_CHECKING:
    import asyncssh

SCRIPT = "/usr/local/lib/scherbelberg/node_reaper.py"
UNIT = "scherbelberg-reaper"
CHECK_SECONDS = 15  # how often the node checks its TTL and idleness
SCRIPT_SOURCE = Path(node_reaper.__file__).read_text()  # the reaper, as one file

SERVICE = """\
[Unit]
Description=scherbelberg: delete this cluster at its TTL or idle timeout

[Service]
Type=oneshot
ExecStart={python} {script}
"""

TIMER = f"""\
[Unit]
Description=scherbelberg: check this cluster's TTL and idle timeout

[Timer]
OnActiveSec={CHECK_SECONDS}s
OnUnitActiveSec={CHECK_SECONDS}s
AccuracySec=1s

[Install]
WantedBy=timers.target
"""


def reaper_config(
    *,
    cluster: str,
    endpoint: str,
    server_id: int,
    expires: float | None,
    idle_timeout: float | None,
) -> dict[str, Any]:
    return {
        "cluster": cluster,
        "endpoint": endpoint,
        "server_id": server_id,
        "expires": expires,
        "idle_timeout": idle_timeout,
        "installed": time.time(),
    }


async def install(
    conn: asyncssh.SSHClientConnection, *, python: str, config: dict[str, Any], token: str
) -> None:
    """Write script, config, token (0600) and units; start the timer. Raises on failure."""
    directory = str(Path(node_reaper.CONFIG).parent)
    files = [
        (SCRIPT, SCRIPT_SOURCE, "0755"),
        (node_reaper.CONFIG, json.dumps(config, indent=1) + "\n", "0600"),
        (node_reaper.TOKEN, token + "\n", "0600"),
        (
            f"/etc/systemd/system/{UNIT}.service",
            SERVICE.format(python=python, script=SCRIPT),
            "0644",
        ),
        (f"/etc/systemd/system/{UNIT}.timer", TIMER, "0644"),
    ]
    await _run(conn, f"install -d -m 0700 -o root -g root {shlex.quote(directory)}")
    await _run(conn, f"install -d -m 0755 {shlex.quote(str(Path(SCRIPT).parent))}")
    for path, content, mode in files:
        # umask first: the file never exists with wider permissions, not even for a moment
        target = shlex.quote(path)
        await _run(conn, f"umask 077 && cat > {target} && chmod {mode} {target}", content)
    await _run(conn, f"systemctl daemon-reload && systemctl enable --now {UNIT}.timer")


async def _run(conn: asyncssh.SSHClientConnection, command: str, stdin: str | None = None) -> None:
    status, out, err = await ssh.run(conn, command, timeout=60, input=stdin)
    if status != 0:
        raise ScherbelbergError(
            f"could not set up the reaper on the scheduler ({command.split()[0]}): "
            f"{(err or out).strip()[-300:]}"
        )
