"""Must show 4: the seed's async API across processes: one creates, another (elsewhere)
re-attaches, computes and destroys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Target

CREATE = """
import asyncio, json, sys
from scherbelberg import Cluster
kwargs = json.loads(sys.argv[1])
async def main():
    c = await Cluster.from_new(name="seeded", n_workers=1, **kwargs)
    client = await c.get_client()
    print("sum", await client.submit(sum, [1, 2, 3]))
    await client.close()
    await c.detach()
asyncio.run(main())
"""

REATTACH = """
import asyncio, json, sys
from scherbelberg import Cluster
kwargs = json.loads(sys.argv[1])
async def main():
    c = await Cluster.from_existing(name="seeded", **kwargs)
    client = await c.get_client()
    x = await client.submit(lambda: __import__("socket").gethostname())
    print("ran on", x)
    await client.close()
    await c.destroy()
asyncio.run(main())
"""


def run(code: str, kwargs: dict[str, object], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_from_new_then_from_existing_elsewhere(target: Target, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    out = run(CREATE, target.cluster_kwargs, first)
    assert "sum 6" in out
    # the cluster outlived the process that made it
    names = {s.name for s in target.hcloud().servers.get_all()}
    assert names == {"seeded-scheduler", "seeded-worker-0"}
    # reattach needs only the name: keys and certificates come from the user's state dir
    reattach_kwargs = {k: v for k, v in target.cluster_kwargs.items() if k == "token"}
    out = run(REATTACH, reattach_kwargs, second)
    assert "ran on seeded-worker-0" in out
    assert target.hcloud().servers.get_all() == []
    assert not (Path(os.environ["SCHERBELBERG_STATE_DIR"]) / "seeded").exists()
