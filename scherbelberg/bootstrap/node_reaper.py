"""The reaper on the scheduler node (`reaper="node"`): deletes the whole cluster once its TTL
has passed or it has been idle too long, even when every client machine is off.

Runs from a systemd timer as root, with the Python standard library only (it is copied to the
node as this one file). It reads what the client delivered over SSH after boot:

- `CONFIG`: the cluster's name, the API endpoint, this server's id, the deadline and the
  idle timeout (no secrets);
- `TOKEN`: the Hetzner API token, mode 0600, root only — the one place a token ever reaches a
  node. It is used for nothing but deleting resources labelled `scherbelberg/cluster=<name>`.

Idleness comes from the scheduler's own view, written by the idle preload
(`bootstrap/idle.py`) to IDLE_STATUS_FILE; a scheduler that stopped writing it is as idle as
one that has nothing to do.

Deletion order, so that nothing is left that only this server's deletion would free: the other
servers (waiting for their delete actions), then this server's firewall is removed from it and
deleted, then the network (Hetzner detaches members itself), placement groups and SSH key,
and this server last. The scheduler of such a cluster is in no placement group for that reason.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

CONFIG = "/etc/scherbelberg/reaper/config.json"
TOKEN = "/etc/scherbelberg/reaper/token"
IDLE_STATUS_FILE = "/run/scherbelberg/idle.json"  # bootstrap/idle.py writes it
STALE_STATUS = 60.0  # seconds without a fresh idle status: the scheduler is not running
RETRY_CODES = {"conflict", "resource_in_use", "locked", "rate_limit_exceeded", "timeout"}
DEADLINE = 300.0  # seconds for the whole deletion


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


class Api:
    """The few Hetzner API calls the reaper needs, over urllib (no dependencies on the node)."""

    def __init__(self, endpoint: str, token: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.endpoint + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read() or b"{}").get("error", {})
            except ValueError:
                error = {}
            raise ApiError(exc.code, error.get("code", ""), error.get("message", "")) from None
        return json.loads(text) if text else {}

    def retrying(self, method: str, path: str, deadline: float, body: Any = None) -> Any:
        """Retry what Hetzner answers for a short while after a server's deletion (422
        resource_in_use for firewalls, networks, placement groups), 5xx and timeouts."""
        delay = 1.0
        while True:
            try:
                return self.call(method, path, body)
            except ApiError as exc:
                if exc.status == 404:
                    return {}
                transient = exc.code in RETRY_CODES or exc.status >= 500
                if not transient or time.monotonic() + delay > deadline:
                    raise
            except (urllib.error.URLError, TimeoutError, OSError):
                if time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def labelled(self, kind: str, selector: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"label_selector": selector, "per_page": 50})
        return list(self.call("GET", f"/{kind}?{query}").get(kind, []))

    def wait(self, action_ids: list[int], deadline: float) -> None:
        pending = set(action_ids)
        while pending:
            for action_id in sorted(pending):
                action = self.retrying("GET", f"/actions/{action_id}", deadline).get("action")
                if action is None or action.get("status") != "running":
                    pending.discard(action_id)
            if pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"actions {sorted(pending)} still running")
                time.sleep(1.0)


def due(config: dict[str, Any], now: float, status: dict[str, Any] | None) -> str | None:
    """Why the cluster must go now ("ttl", "idle"), or None."""
    expires = config.get("expires")
    if expires is not None and now >= float(expires):
        return "ttl"
    timeout = config.get("idle_timeout")
    if timeout is None:
        return None
    if status is None or now - float(status.get("time", 0)) > STALE_STATUS:
        # no scheduler answering: idle since the last status (or since the reaper came)
        last = float((status or {}).get("time") or config.get("installed", now))
        idle_for: float | None = now - last
    else:
        idle_for = status.get("idle_for")
        if status.get("busy") or status.get("clients"):
            idle_for = None
    return "idle" if idle_for is not None and idle_for >= float(timeout) else None


def delete_cluster(api: Api, cluster: str, self_id: int, deadline: float) -> None:
    selector = f"scherbelberg/cluster={cluster}"
    others = [s for s in api.labelled("servers", selector) if int(s["id"]) != self_id]
    actions = []
    for server in others:
        body = api.retrying("DELETE", f"/servers/{server['id']}", deadline)
        if body.get("action"):
            actions.append(int(body["action"]["id"]))
    api.wait(actions, deadline)
    for firewall in api.labelled("firewalls", selector):
        applied = [
            r for r in firewall.get("applied_to", []) if r.get("server", {}).get("id") == self_id
        ]
        if applied:
            body = api.retrying(
                "POST",
                f"/firewalls/{firewall['id']}/actions/remove_from_resources",
                deadline,
                {"remove_from": [{"type": "server", "server": {"id": self_id}}]},
            )
            api.wait([int(a["id"]) for a in body.get("actions", [])], deadline)
        api.retrying("DELETE", f"/firewalls/{firewall['id']}", deadline)
    for kind in ("networks", "placement_groups", "ssh_keys"):
        for resource in api.labelled(kind, selector):
            api.retrying("DELETE", f"/{kind}/{resource['id']}", deadline)
    api.retrying("DELETE", f"/servers/{self_id}", deadline)  # the last request it makes


def _read_status() -> dict[str, Any] | None:
    try:
        with open(IDLE_STATUS_FILE) as file:
            found = json.load(file)
        return found if isinstance(found, dict) else None
    except (OSError, ValueError):
        return None


def main() -> int:
    try:
        with open(CONFIG) as file:
            config = json.load(file)
        with open(TOKEN) as file:
            token = file.read().strip()
    except OSError:
        return 0  # not set up (yet): nothing to do
    reason = due(config, time.time(), _read_status())
    if reason is None:
        return 0
    what = "its TTL has passed" if reason == "ttl" else "it has been idle too long"
    print(f"scherbelberg reaper: deleting cluster {config['cluster']}: {what}", flush=True)
    api = Api(config["endpoint"], token)
    delete_cluster(api, config["cluster"], int(config["server_id"]), time.monotonic() + DEADLINE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
