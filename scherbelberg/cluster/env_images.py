"""Environment images: a Hetzner snapshot that already holds the cluster's Python environment.

Why: every node installs the client's environment at boot, and that install dominates the
time to a ready node. A snapshot made once from a server that did the install lets nodes skip
it: `HetznerCluster(image=<snapshot id>, preinstalled=True)` only checks the environment.

`build_env_image` makes one temporary server (with its own SSH key and a firewall admitting
SSH from this client only), lets cloud-init install the environment, waits for it over SSH
with a pinned host key, wipes what must not travel into clones (cloud-init's state, the
bootstrap state and log, the SSH host keys and authorized keys), shuts it down, snapshots it
and deletes the server, key and firewall again — also when anything fails on the way.

Snapshots carry `scherbelberg/managed=true` and `scherbelberg/env-image=<env_hash(...)>` (the
environment, the architecture and the base image), so `find_env_image` finds the one made for
an environment, and `scherbelberg/last-used` (unix seconds), so `prune_plan` can tell images
in use from forgotten ones: Hetzner bills snapshots per GB and month until they are deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..bootstrap.cloud_config import LOG_FILE, STATE_DIR, WAIT_COMMAND, build_image_config
from ..bootstrap.env import EnvSpec, with_dashboard
from ..errors import BootstrapError, ConfigError, HetznerError
from ..hetzner import labels, lookups
from ..hetzner.infra import RELEASE_SECONDS, delete_servers
from ..hetzner.servers import ServerRecord
from ..hetzner.session import HetznerSession
from . import ssh

log = logging.getLogger(__name__)

ROLE = "env-image-builder"
ENV_IMAGE = f"{labels.PREFIX}/env-image"  # label on the snapshot: env_hash(...)
BASE_IMAGE = f"{labels.PREFIX}/base-image"  # the system image it was made from
PYTHON = f"{labels.PREFIX}/python"  # the environment's Python major.minor
LAST_USED = f"{labels.PREFIX}/last-used"  # unix seconds: made, or last booted from
STOP_POLL = 2.0  # seconds between checks that the server is off
# Snapshots of large disks or across locations have taken 15-60 minutes on Hetzner;
# terraform-provider-hcloud waits 90 (its PR #392; hetzner-reality.md, "Release lag").
SNAPSHOT_SECONDS = 90 * 60.0

# What must not travel into the clones: cloud-init's state (so each clone runs its own
# user_data), the builder's bootstrap state and log, its SSH host keys, login keys and
# machine-id. A Hetzner snapshot copies the disk as it is: nobody else resets these.
CLEAN_COMMAND = (
    "set -e; cloud-init clean --logs; "
    f"rm -rf {STATE_DIR} {LOG_FILE.rsplit('/', 1)[0]} /usr/local/sbin/scherbelberg-bootstrap "
    f"{WAIT_COMMAND}; "
    "rm -f /etc/ssh/ssh_host_* /root/.ssh/authorized_keys; "
    # an empty machine-id: systemd makes a new one at each clone's first boot
    "truncate -s 0 /etc/machine-id; "
    "[ -L /var/lib/dbus/machine-id ] || rm -f /var/lib/dbus/machine-id; "
    "rm -f /root/.bash_history; sync"
)


def env_hash(env: EnvSpec, architecture: str, base_image: str) -> str:
    """A short hash of what the environment holds (not of where it was installed from), on
    which architecture and on which system image: an image is only used for the same three."""
    data = {
        "method": env.method,
        "python": env.python,
        "pins": sorted([name, version] for name, version in env.pins),
        "extra_packages": sorted(env.extra_packages),
        "prefix": env.prefix,
        "architecture": architecture,
        "base_image": base_image,
    }
    if env.conda_packages:  # the conda method: the exact packages (pip's hashes unchanged)
        data["conda_packages"] = [list(lines) for _, lines in env.conda_packages]
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EnvImage:
    """An environment image as the API lists it, with its labels read."""

    id: int
    env_hash: str
    architecture: str
    base_image: str
    python: str
    status: str
    created: float  # unix seconds
    last_used: float  # unix seconds; `created` if never booted from
    image_size_gb: float | None
    description: str
    labels: dict[str, str]

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> EnvImage:
        found = dict(data.get("labels") or {})
        created = _unix(str(data.get("created") or "")) or 0.0
        try:
            last_used = float(found.get(LAST_USED, ""))
        except ValueError:
            last_used = created
        size = data.get("image_size")
        return cls(
            id=int(data["id"]),
            env_hash=found.get(ENV_IMAGE, ""),
            architecture=str(data.get("architecture") or ""),
            base_image=found.get(BASE_IMAGE, ""),
            python=found.get(PYTHON, ""),
            status=str(data.get("status") or ""),
            created=created,
            last_used=last_used,
            image_size_gb=float(size) if size is not None else None,
            description=str(data.get("description") or ""),
            labels=found,
        )

    def matches(self, env: EnvSpec) -> bool:
        """Made for `env` (on its own architecture and base image)?"""
        return self.env_hash == env_hash(env, self.architecture, self.base_image)


def _unix(timestamp: str) -> float | None:
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


async def find_env_image(
    session: HetznerSession, env: EnvSpec, architecture: str, base_image: str
) -> EnvImage | None:
    """The newest available snapshot made for `env` on `architecture` from `base_image`."""
    params: dict[str, Any] = {
        "type": "snapshot",
        "label_selector": f"{ENV_IMAGE}={env_hash(env, architecture, base_image)}",
        "architecture": architecture,
        "per_page": 50,
    }
    body = await session.request("looking up environment images", "GET", "/images", params=params)
    found = [EnvImage.from_api(i) for i in body.get("images", [])]
    ready = [i for i in found if i.status == "available"]
    return max(ready, key=lambda i: (i.created, i.id)) if ready else None


async def mark_used(session: HetznerSession, image: EnvImage) -> None:
    """Record that a cluster boots from `image` now (for `prune_plan`'s unused rule)."""
    found = {**image.labels, LAST_USED: str(int(time.time()))}
    await session.request(
        f"marking image {image.id} used", "PUT", f"/images/{image.id}", json={"labels": found}
    )


def prune_plan(
    found: list[EnvImage], *, keep: int, unused_for: float | None, now: float
) -> list[tuple[EnvImage, str]]:
    """Which images `image prune` deletes, each with the reason: all but the newest `keep`
    of each environment hash, and (if `unused_for` is given) any not booted from for that
    many seconds. Images still being made are never chosen."""
    chosen: list[tuple[EnvImage, str]] = []
    by_hash: dict[str, list[EnvImage]] = {}
    for image in found:
        if image.status == "available":
            by_hash.setdefault(image.env_hash, []).append(image)
    for group in by_hash.values():
        group.sort(key=lambda i: (i.created, i.id), reverse=True)
        for rank, image in enumerate(group):
            if rank >= keep:
                chosen.append((image, f"not among the newest {keep} of its environment"))
            elif unused_for is not None and now - image.last_used > unused_for:
                days = (now - image.last_used) / 86400
                chosen.append((image, f"not used for {days:.1f} days"))
    return sorted(chosen, key=lambda pair: pair[0].id)


async def list_env_images(session: HetznerSession) -> list[EnvImage]:
    """Every environment image scherbelberg made (label `scherbelberg/managed`)."""
    images: list[dict[str, Any]] = []
    page: int | None = 1
    while page is not None:
        body = await session.request(
            "listing environment images",
            "GET",
            "/images",
            params={
                "type": "snapshot",
                "label_selector": f"{labels.MANAGED}=true,{ENV_IMAGE}",
                "page": page,
                "per_page": 50,
            },
        )
        images += body.get("images", [])
        page = body.get("meta", {}).get("pagination", {}).get("next_page")
    return [EnvImage.from_api(i) for i in images]


async def delete_env_image(session: HetznerSession, image_id: int) -> None:
    """Delete a snapshot scherbelberg made (refuses any other image)."""
    doing = f"deleting image {image_id}"
    body = await session.request(doing, "GET", f"/images/{image_id}")
    found = body["image"].get("labels") or {}
    if found.get(labels.MANAGED) != "true" or ENV_IMAGE not in found:
        raise HetznerError(f"{doing}: not an environment image made by scherbelberg")
    await session.request(doing, "DELETE", f"/images/{image_id}")


async def build_env_image(
    session: HetznerSession,
    *,
    env: EnvSpec,
    location: str,
    server_type: str,
    base_image: str,
    deadline: float,
    allowed_sources: list[str] | None = None,
    client_address_url: str = "https://api.ipify.org",
    action_deadline: float = 300.0,
    snapshot_deadline: float = SNAPSHOT_SECONDS,
    extra_labels: dict[str, str] | None = None,
    owner: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Install `env` on a temporary server, snapshot it, return the snapshot's image id.

    `deadline` bounds the install (seconds, from the server's creation), `action_deadline`
    each Hetzner action but the snapshot, `snapshot_deadline` the snapshot. Everything made on
    the way is deleted again, also on failure; the snapshot only stays if it was made completely.
    `owner`: the cluster whose labels the temporary resources carry (so that cluster's
    deletion takes them too); by default they are a "cluster" of their own.
    """
    from .client_address import client_address

    say = progress or (lambda message: log.info("%s", message))
    if env.preinstalled:
        raise ConfigError("build_env_image installs the environment: pass preinstalled=False")
    name = f"sbg-image-{secrets.token_hex(3)}"
    doing = f"building environment image ({name})"
    resource_labels = labels.for_resource(owner or name, ROLE, extra_labels)
    # check the inputs before anything is made
    place = await lookups.location(session, location)
    kind = await lookups.server_type(session, server_type, place.name)
    base = await lookups.image(session, base_image, kind.architecture)
    made_for = env_hash(env, kind.architecture, base.name)
    sources = allowed_sources or [f"{await client_address(client_address_url)}/32"]

    client_private, client_public = ssh.generate_ed25519()
    host_private, host_public = ssh.generate_ed25519()
    # the image serves every role: it also holds the scheduler's dashboard packages
    user_data = build_image_config(with_dashboard(env), host_private, host_public)
    key_id: int | None = None
    firewall_id: int | None = None
    server_id: int | None = None
    image_id: int | None = None
    done = False
    try:
        body = await session.request(
            doing,
            "POST",
            "/ssh_keys",
            json={"name": f"{name}-key", "public_key": client_public, "labels": resource_labels},
        )
        key_id = int(body["ssh_key"]["id"])
        rule = {"direction": "in", "source_ips": sources, "destination_ips": []}
        body = await session.request(
            doing,
            "POST",
            "/firewalls",
            json={
                "name": f"{name}-fw",
                "rules": [
                    {**rule, "protocol": "tcp", "port": "22", "description": "ssh"},
                    {**rule, "protocol": "icmp", "port": None, "description": "ping"},
                ],
                "labels": resource_labels,
            },
        )
        firewall_id = int(body["firewall"]["id"])
        started = time.monotonic()
        body = await session.request(
            doing,
            "POST",
            "/servers",
            json={
                "name": name,
                "server_type": kind.name,
                "image": base.id,
                "location": place.name,
                "ssh_keys": [key_id],
                "firewalls": [{"firewall": firewall_id}],
                "user_data": user_data,
                "labels": {**resource_labels, f"{labels.PREFIX}/node": name},
                "start_after_create": True,
            },
        )
        server_id = int(body["server"]["id"])
        public_ip = ServerRecord.from_api(body["server"]).public_ip
        actions = [int(body["action"]["id"]), *[int(a["id"]) for a in body.get("next_actions", [])]]
        say(f"{name}: server {server_id} requested ({kind.name}, {base.name}), installing")
        await session.wait_for_actions(actions, deadline=action_deadline, doing=doing)
        remaining = max(10.0, deadline - (time.monotonic() - started))
        conn = await ssh.connect(public_ip, client_private, host_public, deadline=remaining)
        async with conn:
            remaining = max(10.0, deadline - (time.monotonic() - started))
            status, out, err = await ssh.run(
                conn, f"{WAIT_COMMAND} {int(remaining)}", timeout=remaining + 30
            )
            if status != 0:
                what = "failed" if status == 1 else f"not ready after {deadline:.0f} s"
                raise BootstrapError(f"{doing}: the install {what}:\n{(out + err).strip()}")
            say(f"{name}: environment installed, cleaning up for the snapshot")
            status, out, err = await ssh.run(conn, CLEAN_COMMAND, timeout=120)
            if status != 0:
                raise BootstrapError(f"{doing}: cleaning the server failed:\n{(out + err).strip()}")
        await _shut_down(session, server_id, deadline=action_deadline, doing=doing)
        say(f"{name}: server off, taking the snapshot")
        body = await session.request(
            doing,
            "POST",
            f"/servers/{server_id}/actions/create_image",
            json={
                "type": "snapshot",
                "description": f"scherbelberg env {env.method} python {env.python} "
                f"on {base.name} ({made_for})",
                "labels": {
                    labels.MANAGED: "true",
                    ENV_IMAGE: made_for,
                    BASE_IMAGE: base.name,
                    PYTHON: env.python,
                    LAST_USED: str(int(time.time())),
                },
            },
        )
        image_id = int(body["image"]["id"])
        await session.wait_for_actions(
            [int(body["action"]["id"])], deadline=snapshot_deadline, doing=doing
        )
        done = True
        say(f"{name}: snapshot {image_id} ready")
        return image_id
    finally:
        await asyncio.shield(
            _clean_up(
                session,
                doing,
                server_id=server_id,
                firewall_id=firewall_id,
                key_id=key_id,
                image_id=None if done else image_id,
                deadline=action_deadline,
            )
        )


async def _shut_down(
    session: HetznerSession, server_id: int, *, deadline: float, doing: str
) -> None:
    """ACPI shutdown (the disk is consistent), then wait until Hetzner reports the server off."""
    body = await session.request(doing, "POST", f"/servers/{server_id}/actions/shutdown")
    await session.wait_for_actions([int(body["action"]["id"])], deadline=deadline, doing=doing)
    end = time.monotonic() + deadline
    while True:
        body = await session.request(doing, "GET", f"/servers/{server_id}")
        if body["server"]["status"] == "off":
            return
        if time.monotonic() > end:
            raise HetznerError(f"{doing}: the server did not shut down in {deadline:.0f} s")
        await asyncio.sleep(STOP_POLL)


async def _clean_up(
    session: HetznerSession,
    doing: str,
    *,
    server_id: int | None,
    firewall_id: int | None,
    key_id: int | None,
    image_id: int | None,
    deadline: float,
) -> None:
    """Delete what the build made; each step on its own, so one failure does not leave the
    rest (the server first: a firewall in use cannot go)."""
    doing = doing.replace("building", "cleaning up after")
    if server_id is not None:
        try:
            await delete_servers(session, [server_id], deadline=deadline, doing=doing)
        except Exception:
            log.exception("%s: could not delete server %s", doing, server_id)
    for path in (
        f"/images/{image_id}" if image_id is not None else None,
        f"/firewalls/{firewall_id}" if firewall_id is not None else None,
        f"/ssh_keys/{key_id}" if key_id is not None else None,
    ):
        if path is None:
            continue
        try:  # a firewall answers resource_in_use for a while after its server went
            await session.request(
                doing, "DELETE", path, retry_for=RELEASE_SECONDS, in_use_is_transient=True
            )
        except HetznerError as exc:
            if exc.code != "not_found":
                log.exception("%s: could not delete %s", doing, path)
        except Exception:
            log.exception("%s: could not delete %s", doing, path)
