"""Must show (issue 12): a client running in a conda environment gets nodes with the same
conda packages, installed without a solve, and nothing is made when a package has no build for
the nodes' platform.

The client's environment is made here with py-rattler from the lab's own conda channel
(scherbelberg/emulator/conda_channel.py: python + Dask's packages), scherbelberg and its other
dependencies pip-installed into it (they are the pip extras the nodes reproduce with uv). The
client runs as a subprocess with that environment's python and no scherbelberg configuration
but the local Hetzner's (endpoint, token, mirror, address echo).

Must show 3 (the pip path unchanged for a client outside conda) is every other e2e test: the
test process runs in a venv, e.g. tests/e2e/test_compute.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scherbelberg.bootstrap.env import RATTLER_VERSION
from scherbelberg.emulator import conda_channel
from tests.e2e.conftest import REAL_TOKEN, Target

pytestmark = pytest.mark.machines

ROOT = Path(__file__).resolve().parents[2]

# Runs in the conda environment: (2) an arm worker (the lab's channel has no linux-aarch64
# python) is refused before anything exists, then (1) a 1+1 cluster with no configuration.
CLIENT = r"""
import json, os, sys
from pathlib import Path
from distributed import Client
from hcloud import Client as HcloudClient
from scherbelberg import HetznerCluster
from scherbelberg.bootstrap import LOG_FILE
from scherbelberg.errors import ConfigError

def conda_packages():
    import json, pathlib, sys
    meta = pathlib.Path(sys.prefix, "conda-meta").glob("*.json")
    return sorted((m["name"], m["version"], m["build"]) for m in map(json.load, map(open, meta)))

out = {"client": conda_packages(), "client_prefix": sys.prefix}
try:
    HetznerCluster(n_workers=1, worker_server_type="cax11")
except ConfigError as exc:
    out["arm_error"] = str(exc)
hcloud = HcloudClient(os.environ["HCLOUD_TOKEN"], api_endpoint=os.environ["HCLOUD_ENDPOINT"])
kinds = ("servers", "networks", "firewalls", "ssh_keys", "placement_groups")
out["made_before_the_error"] = sum(len(getattr(hcloud, k).get_all()) for k in kinds)
print(json.dumps(out), flush=True)

with HetznerCluster(n_workers=1) as cluster:
    out["method"] = cluster.settings.env.method
    with Client(cluster) as client:
        client.wait_for_workers(1, timeout=60)
        assert client.submit(sum, [1, 2, 3]).result() == 6
        [worker] = client.run(conda_packages).values()
        out["worker"] = worker
        out["scheduler"] = client.run_on_scheduler(conda_packages)
        [out["worker_prefix"]] = client.run(lambda: sys.prefix).values()
        out["worker_conda_meta"] = client.run(
            lambda: os.path.isdir(os.path.join(sys.prefix, "conda-meta"))
        )
        read_log = lambda: open(LOG_FILE).read()
        out["logs"] = [*client.run(read_log).values(), client.run_on_scheduler(read_log)]
    out["cluster"] = cluster.name
print(json.dumps(out), flush=True)
"""


@pytest.fixture(scope="module")
def conda_client(tmp_path_factory: pytest.TempPathFactory, local_hetzner: object) -> Path:
    """A conda environment from the lab's channel, scherbelberg pip-installed into it."""
    if REAL_TOKEN:
        pytest.skip("the client's environment comes from the local Hetzner's conda channel")
    conda_channel.ensure_channel()  # ci/setup builds it; else here, in about a minute
    info = local_hetzner.control.info()  # type: ignore[attr-defined]
    channel = info["echo_url"].rstrip("/") + conda_channel.MIRROR_PATH.rstrip("/")
    tmp = tmp_path_factory.mktemp("conda-client")
    prefix = tmp / "env"
    conda_channel.create_env(channel, prefix)
    wheels = tmp / "wheels"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True, timeout=600,
    )  # fmt: skip
    [wheel] = wheels.glob("scherbelberg-*.whl")
    subprocess.run(
        [*pip, "--python", str(prefix / "bin" / "python"), "install", "-q", str(wheel)],
        check=True, timeout=900,
    )  # fmt: skip
    return prefix


def test_a_conda_client_gets_its_conda_environment_on_every_node(
    target: Target, conda_client: Path, tmp_path: Path
) -> None:
    kwargs = target.cluster_kwargs
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DASK_")},
        "HCLOUD_TOKEN": kwargs["token"],
        "HCLOUD_ENDPOINT": kwargs["endpoint"],
        "DASK_SCHERBELBERG__PIP_INDEX_URL": kwargs["pip_index_url"],
        "DASK_SCHERBELBERG__CLIENT_ADDRESS_URL": kwargs["client_address_url"],
        "DASK_SCHERBELBERG__ENV_IMAGES": "false",
    }
    result = subprocess.run(
        [str(conda_client / "bin" / "python"), "-c", CLIENT],
        capture_output=True, text=True, timeout=1500, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    # the cluster's own lines (its price, ...) come between the two JSON objects
    before, after = (json.loads(x) for x in result.stdout.splitlines() if x.startswith("{"))
    # (2) one error naming what the channel has no linux-aarch64 build of; nothing was made
    message = before["arm_error"]
    assert message.count("cannot be reproduced") == 1
    assert "linux-aarch64 (arm servers): " in message and "python 3.11.2" in message
    assert "dask" not in message.split(": ", 1)[1].replace("linux-aarch64", "")  # noarch
    assert before["made_before_the_error"] == 0
    # (1) through the conda path, with no configuration
    assert after["method"] == "conda"
    client = [tuple(p) for p in after["client"]]
    assert ("python", "3.11.2") in [p[:2] for p in client]
    assert [tuple(p) for p in after["worker"]] == client
    assert [tuple(p) for p in after["scheduler"]] == client
    assert list(after["worker_conda_meta"].values()) == [True]
    assert after["worker_prefix"] == "/opt/scherbelberg/env"
    n = len(client)
    for log in after["logs"]:  # the bootstrap's own account, on both nodes
        assert f"conda: {n} packages for linux-64; py-rattler {RATTLER_VERSION}" in log, log
        assert f"{n} conda packages installed in /opt/scherbelberg/env (no solve)" in log, log
        assert "the environment matches the client" in log, log
    assert target.leftovers() == []
