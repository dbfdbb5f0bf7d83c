"""The official `hcloud` CLI (Debian's hcloud-cli 1.30.3), unmodified, on the local Hetzner.

The CLI only needs HCLOUD_ENDPOINT and HCLOUD_TOKEN (no config file, no context). Each command
below is one a user would type; the test checks what the CLI prints and what the emulator saw.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable

import pytest

from scherbelberg.emulator.control import LocalHetzner
from tests.machines import Keys

HCLOUD = shutil.which("hcloud") or "/usr/bin/hcloud"

Cli = Callable[..., str]


@pytest.fixture
def hcloud_cli(local_hetzner: LocalHetzner, project_token: str) -> Cli:
    """Run `hcloud ARGS...` against the local Hetzner in the test's own project; return stdout."""
    # ci/setup installs it; a missing CLI is a failure, not a skip, so CI cannot pass without it
    assert os.path.exists(HCLOUD), "the hcloud CLI is missing: apt-get install hcloud-cli"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HCLOUD_", "HETZNER_"))
    }
    env |= {
        "HCLOUD_ENDPOINT": local_hetzner.endpoint,
        "HCLOUD_TOKEN": project_token,
        # no ~/.config/hcloud/cli.toml of the user's may pick another context
        "HCLOUD_CONFIG": os.devnull,
    }

    def run(*args: str) -> str:
        result = subprocess.run(
            [HCLOUD, *args], env=env, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, (
            f"hcloud {' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
        return result.stdout

    return run


def _port_open(host: str, port: int, deadline: float) -> bool:
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        try:
            with socket.create_connection((host, port), timeout=2):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def test_cli_builds_and_removes_a_server(
    hcloud_cli: Cli, local_hetzner: LocalHetzner, project_token: str
) -> None:
    keys = Keys.generate()
    assert "created" in hcloud_cli(
        "ssh-key", "create", "--name", "cli-key", "--public-key", keys.client_public
    )
    out = hcloud_cli("network", "create", "--name", "cli-net", "--ip-range", "10.0.0.0/16")
    assert "created" in out
    hcloud_cli(
        "network", "add-subnet", "cli-net",
        "--type", "cloud", "--network-zone", "eu-central", "--ip-range", "10.0.1.0/24",
    )  # fmt: skip
    assert "created" in hcloud_cli("firewall", "create", "--name", "cli-fw")
    hcloud_cli(
        "firewall", "add-rule", "cli-fw",
        "--direction", "in", "--protocol", "tcp", "--port", "22", "--source-ips", "0.0.0.0/0",
    )  # fmt: skip

    out = hcloud_cli(
        "server", "create", "--name", "cli-1", "--type", "cx23", "--image", "debian-12",
        "--ssh-key", "cli-key", "--network", "cli-net", "--firewall", "cli-fw",
    )  # fmt: skip
    assert "Server" in out and "created" in out

    listed = json.loads(hcloud_cli("server", "list", "-o", "json"))
    assert [s["name"] for s in listed] == ["cli-1"]
    server = listed[0]
    assert server["status"] == "running"
    assert server["server_type"]["name"] == "cx23"
    assert server["image"]["name"] == "debian-12"
    assert server["datacenter"]["name"] == "fsn1-dc14"
    network_id = json.loads(hcloud_cli("network", "describe", "cli-net", "-o", "json"))["id"]
    assert [(p["network"], p["ip"].startswith("10.0.1.")) for p in server["private_net"]] == [
        (network_id, True)
    ]
    ipv4 = server["public_net"]["ipv4"]["ip"]
    control = local_hetzner.control
    assert control.server(server["id"])["public_ipv4"] == ipv4
    firewall = json.loads(hcloud_cli("firewall", "describe", "cli-fw", "-o", "json"))
    assert [(r["direction"], r["protocol"], r["port"]) for r in firewall["rules"]] == [
        ("in", "tcp", "22")
    ]
    assert [a["server"]["id"] for a in firewall["applied_to"]] == [server["id"]]

    backend = control.info()["backend"]
    if backend == "nspawn":
        assert control.server(server["id"])["machine_running"] is True
        # the firewall lets 22 in from anywhere: the machine's sshd answers
        assert _port_open(ipv4, 22, deadline=90), f"no SSH on {ipv4}:22"

    assert "deleted" in hcloud_cli("server", "delete", "cli-1")
    # the CLI does not wait for the delete action; the server is gone from the API at once
    assert json.loads(hcloud_cli("server", "list", "-o", "json")) in (None, [])

    # what the CLI asked for: names resolved with ?name=, the create's actions polled
    log = control.requests(token=project_token)
    seen = {(r["method"], r["path"]) for r in log}
    assert ("GET", "/ssh_keys", "name=cli-key") in {
        (r["method"], r["path"], r["query"]) for r in log
    }
    assert ("POST", "/servers") in seen
    assert ("POST", f"/firewalls/{firewall['id']}/actions/set_rules") in seen
    assert ("POST", f"/networks/{network_id}/actions/add_subnet") in seen
    assert ("DELETE", f"/servers/{server['id']}") in seen
    assert all(r["status"] < 400 for r in log), [r for r in log if r["status"] >= 400]
