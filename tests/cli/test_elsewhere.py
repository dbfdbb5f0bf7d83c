"""Must show 2: a cluster made by one process is listed, used and destroyed from another
directory by another process; and destroy works by label when the local state is gone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import cli, cli_json
from tests.e2e.conftest import Target

pytestmark = pytest.mark.machines  # starts clusters on real machines


def test_made_here_used_and_destroyed_there(target: Target, tmp_path: Path) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    cli(target, "create", "--name", "elsewhere", "--workers", "1", cwd=here)
    assert list(here.iterdir()) == []  # no state in the working directory

    [listed] = cli_json(target, "ls", cwd=there)
    assert listed["name"] == "elsewhere" and listed["local_state"]
    out = cli(target, "ssh", "elsewhere", "worker-0", "--", "hostname", cwd=there).stdout
    assert out.strip() == "elsewhere-worker-0"
    info = cli_json(target, "client", "elsewhere", cwd=there)
    probe = (
        "import json, sys\n"
        "from distributed import Client, Security\n"
        "i = json.loads(sys.argv[1])\n"
        "s = Security(tls_ca_file=i['ca_file'], tls_client_cert=i['cert_file'],"
        " tls_client_key=i['key_file'], require_encryption=True)\n"
        "with Client(i['address'], security=s, timeout=60) as c:\n"
        "    print(c.submit(lambda: __import__('socket').gethostname()).result())\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(info)],
        cwd=there,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip() == "elsewhere-worker-0"

    cli(target, "destroy", "--yes", "elsewhere", cwd=there)
    assert target.leftovers() == []
    assert cli_json(target, "ls", cwd=here) == []


def test_destroy_without_local_state(target: Target, tmp_path: Path) -> None:
    """Another machine (or a lost state dir): ls still finds the cluster by label, and
    destroy deletes it by label."""
    cli(target, "create", "--name", "stateless", "--workers", "0")
    shutil.rmtree(Path(os.environ["SCHERBELBERG_STATE_DIR"]) / "stateless")
    [listed] = cli_json(target, "ls", cwd=tmp_path)
    assert listed["name"] == "stateless" and listed["live"] and not listed["local_state"]
    refused = cli(target, "destroy", "stateless", ok=False)  # no terminal, no --yes
    assert refused.returncode != 0 and "--yes" in refused.stderr
    assert target.leftovers() != []
    cli(target, "destroy", "--yes", "stateless", cwd=tmp_path)
    assert target.leftovers() == []
