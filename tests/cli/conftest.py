"""The CLI's tests run `scherbelberg` as a subprocess against the e2e target (the local
Hetzner, or the real one with SCHERBELBERG_E2E_TOKEN), the way a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from distributed import Security

from tests.e2e.conftest import Target, target  # noqa: F401 - the fixture, for this directory

ROOT = Path(__file__).resolve().parents[2]
API_COMMANDS = {"create", "destroy", "ls", "scale", "catalog", "cleanup", "reap"}


def cli_env(hetzner: Target, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: the token, the target's dask config, state dir."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HETZNER", "HCLOUD_TOKEN", "HCLOUD_ENDPOINT")
        and not k.startswith("DASK_SCHERBELBERG__")
    }
    env["HCLOUD_TOKEN"] = hetzner.token
    env["PYTHONPATH"] = str(ROOT)
    env["COLUMNS"] = "100"
    kwargs = hetzner.cluster_kwargs
    if kwargs.get("pip_index_url"):
        env["DASK_SCHERBELBERG__PIP_INDEX_URL"] = kwargs["pip_index_url"]
    if kwargs.get("python_downloads_json_url"):
        url = kwargs["python_downloads_json_url"]
        env["DASK_SCHERBELBERG__PYTHON_DOWNLOADS_JSON_URL"] = url
    if kwargs.get("client_address_url"):
        env["DASK_SCHERBELBERG__CLIENT_ADDRESS_URL"] = kwargs["client_address_url"]
    if kwargs.get("env_images") is False:
        env["DASK_SCHERBELBERG__ENV_IMAGES"] = "false"
    env["SCHERBELBERG_STATE_DIR"] = os.environ["SCHERBELBERG_STATE_DIR"]
    env.update(extra)
    return env


def argv(hetzner: Target, *args: str) -> list[str]:
    """The command line of `scherbelberg *args`, with `--endpoint` of the target right after
    the command's name (after options such as `--debug` before it, and before a `--`: never
    the real Hetzner by accident, never an argument of a remote command)."""
    words = list(args)
    at = next((i for i, word in enumerate(words) if not word.startswith("-")), None)
    if at is not None and words[at] in API_COMMANDS:
        words[at + 1 : at + 1] = ["--endpoint", hetzner.endpoint]
    return [sys.executable, "-m", "scherbelberg", *words]


def cli(
    hetzner: Target,
    *args: str,
    cwd: Path | None = None,
    timeout: float = 900,
    env: dict[str, str] | None = None,
    ok: bool = True,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv(hetzner, *args),
        cwd=cwd,
        env=env if env is not None else cli_env(hetzner),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if ok:
        assert result.returncode == 0, (
            f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-2000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    return result


def cli_json(hetzner: Target, *args: str, **kwargs: Any) -> Any:
    return json.loads(cli(hetzner, *args, "-o", "json", **kwargs).stdout)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cli/" in str(item.fspath) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(1200))


def security_of(info: dict[str, Any]) -> Security:
    """The TLS a user's own Client needs, from `scherbelberg client NAME -o json`."""
    return Security(
        tls_ca_file=info["ca_file"],
        tls_client_cert=info["cert_file"],
        tls_client_key=info["key_file"],
        require_encryption=True,
    )
