"""Issue 8, must show 3 to 5: clusters with a TTL or an idle timeout are deleted once nobody is
left to do it — by `scherbelberg reap` run as cron would, or by the reaper on the scheduler
node with no client process at all — and the token reaches a node only as the reaper's
root-only file."""

from __future__ import annotations

import asyncio
import time

import pytest
from distributed import Client, fire_and_forget

from scherbelberg.cluster import ssh
from scherbelberg.cluster.state import ClusterState
from tests.cli.conftest import cli, cli_env, cli_json, security_of
from tests.e2e.conftest import Target

pytestmark = pytest.mark.machines  # starts clusters on real machines

TTL = 120.0


def node_reaper_env(target: Target) -> dict[str, str]:
    """The CLI's environment plus the API as the nodes reach it (the local Hetzner's lab)."""
    if target.control is None:
        return cli_env(target)  # the real Hetzner: nodes reach api.hetzner.cloud like we do
    return cli_env(target, DASK_SCHERBELBERG__REAPER_ENDPOINT=target.control.info()["node_api_url"])


def wait_until_gone(target: Target, deadline: float, doing: str) -> float:
    """Poll until the project holds nothing of scherbelberg; returns when that was seen."""
    while target.leftovers():
        assert time.time() < deadline, f"{doing}: still there: {target.leftovers()}"
        time.sleep(5)
    return time.time()


def test_ttl_is_enforced_by_reap_run_as_cron(target: Target) -> None:
    cli(target, "create", "--name", "ttlcron", "--workers", "1", "--ttl", "2m")
    created = time.time()  # the deadline counts from before this, so this is generous to us
    [listed] = cli_json(target, "ls")
    assert listed["name"] == "ttlcron"
    # before its TTL, reap leaves it alone
    assert cli(target, "reap").stdout.strip() == "nothing to reap"
    assert target.leftovers()
    # cron: once a minute, while anything is left
    while target.leftovers():
        assert time.time() < created + TTL + 60, f"not reaped in time: {target.leftovers()}"
        out = cli(target, "reap").stdout
        if "deleted cluster ttlcron: its TTL has passed" in out:
            break
        time.sleep(10)
    assert target.leftovers() == []
    assert "ttlcron" not in ClusterState.list_names()  # and no local state is left


def test_ttl_is_enforced_by_the_node_reaper_alone(target: Target) -> None:
    env = node_reaper_env(target)
    cli(
        target, "create", "--name", "ttlnode", "-w", "1", "--ttl", "2m", "--reaper", "node", env=env
    )
    created = time.time()
    # no process of ours is left: only the scheduler itself can delete the cluster
    wait_until_gone(target, created + TTL + 60, "the node reaper did not delete the cluster")


def test_idle_timeout_node_reaper_waits_for_work_then_deletes(target: Target) -> None:
    """Busy (a task running, no client) it stays; idle and without clients it goes. The token
    is on the scheduler only as the reaper's root-only file, and nowhere on the worker."""
    env = node_reaper_env(target)
    name = "idlenode"
    cli(
        target,
        "create",
        "--name",
        name,
        "-w",
        "1",
        "--idle-timeout",
        "60s",
        "--reaper",
        "node",
        env=env,
    )
    state = ClusterState.load(name)
    assert_token_only_in_the_reaper_file(target, state)

    info = cli_json(target, "client", name, env=env)
    security = security_of(info)
    with Client(info["address"], security=security, timeout=60) as client:
        # a task that outlives the idle timeout, and then no client at all
        fire_and_forget(client.submit(time.sleep, 80, pure=False))
        time.sleep(2)
        assert client.processing() and any(client.processing().values())
    busy_until = time.time() + 75  # longer than the idle timeout
    while time.time() < busy_until:
        assert target.leftovers(), "deleted while a task was running"
        time.sleep(10)
    # the task ends at ~80 s; then 60 s idle, then the next timer run (15 s)
    wait_until_gone(target, time.time() + 60 + 60 + 30, "an idle cluster was not deleted")


def assert_token_only_in_the_reaper_file(target: Target, state: ClusterState) -> None:
    token = target.token
    scheduler_ip = (state.scheduler or {}).get("public_ip")
    assert scheduler_ip, "no scheduler in the local state"

    async def check() -> None:
        nodes = [(f"{state.name}-scheduler", scheduler_ip)]
        nodes += [(n, w["public_ip"]) for n, w in state.workers.items()]
        for node, address in nodes:
            conn = await ssh.connect(
                address, state.ssh_key_path().read_text(), state.host_keys()[node], deadline=60
            )
            async with conn:
                _, found, _ = await ssh.run(
                    conn,
                    f"grep -rlsF {token} /etc /opt /root /var /home /tmp /run /usr/local; "
                    f"cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -cF {token} || true",
                    timeout=120,
                )
                _, mode, _ = await ssh.run(
                    conn, "stat -c '%a %U' /etc/scherbelberg/reaper/token || true", timeout=30
                )
            hits = [line for line in found.split() if line.strip() not in ("", "0")]
            if node.endswith("-scheduler"):
                assert hits == ["/etc/scherbelberg/reaper/token"], hits
                assert mode.split() == ["600", "root"], mode
            else:
                assert hits == [], hits

    asyncio.run(check())


@pytest.mark.parametrize("value", ["5x", "-3m", "0s"])
def test_bad_durations_are_one_line(target: Target, value: str) -> None:
    result = cli(target, "create", "--name", "bad", "--ttl", value, ok=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: ttl"), result.stderr
    assert target.leftovers() == []
