"""dask-cloudprovider's HetznerCluster arguments: each works with the same meaning, or fails
with one line naming scherbelberg's equivalent — before any API request.

The endpoint refuses connections: an argument error that came after a request would be a
"cannot reach the Hetzner API" error instead. A cluster that accepted its arguments gets that
error from its first request (looking up the location), and leaves nothing behind."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import dask.config
import pytest
from dask_cloudprovider.generic.vmcluster import VMCluster
from dask_cloudprovider.hetzner import HetznerCluster as CloudproviderCluster
from distributed.deploy.spec import SpecCluster

from scherbelberg import HetznerCluster
from scherbelberg.errors import ArgumentError, ConfigError, HetznerError
from scherbelberg.hetzner import session


class Nowhere(TypedDict):
    """The keyword arguments that point a cluster at an endpoint that refuses connections."""

    token: str
    endpoint: str


NOWHERE: Nowhere = {"token": "not-a-token", "endpoint": "http://127.0.0.1:9"}  # port 9: refused


@pytest.fixture(autouse=True)
def refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests need only the first request to fail; a refused connection is otherwise
    retried for CONNECTION_RETRY_SECONDS (4 s: tests/control_plane/test_session_retries.py)."""
    monkeypatch.setattr(session, "CONNECTION_RETRY_SECONDS", 0.0)


# name -> (a value dask-cloudprovider users pass, what the error must name)
REFUSED: dict[str, tuple[Any, str]] = {
    "docker_image": ("daskdev/dask:latest", "extra_packages=[...] or image=<snapshot id>"),
    "docker_args": ("--gpus all", "scherbelberg runs no Docker"),
    "bootstrap": (False, "image=<snapshot id>, preinstalled=True"),
    "extra_bootstrap": (["apt-get install -y htop"], "extra_packages=[...]"),
    "env_vars": ({"AWS_PROFILE": "x"}, "distributed.diagnostics.plugin.Environ"),
    "worker_class": ("dask_cuda.CUDAWorker", "worker_nthreads="),
    "worker_module": ("dask_cuda.cli", "worker_nthreads="),
    "worker_options": ({"resources": {"GPU": 1}}, "nthreads (worker_nthreads=)"),
    "scheduler_options": ({"port": 9000}, "scherbelberg.scheduler-port"),
    "security": (False, "always uses TLS"),
    "protocol": ("tcp", "protocol='tls'"),
    "debug": (True, "logging.basicConfig(level='DEBUG')"),
    "auto_shutdown": (True, "ttl= or idle_timeout="),
    "workers": ({"w": {}}, "n_workers="),
    "scheduler": ({"cls": object}, "scheduler_server_type="),
    "worker": ({"cls": object}, "worker_server_type="),
}

# name -> a value that works, with dask-cloudprovider's meaning
ACCEPTED: dict[str, Any] = {
    "n_workers": 2,
    "image": "debian-12",
    "location": "nbg1",
    "server_type": "cx23",
    "token": "not-a-token",
    "name": "sbg-migrated",
    "bootstrap": True,
    "docker_image": None,
    "docker_args": "",
    "extra_bootstrap": [],
    "env_vars": {"EXTRA_PIP_PACKAGES": "xarray zarr>=2.18"},
    "worker_class": "dask.distributed.Nanny",
    "worker_module": "distributed.cli.dask_worker",
    "worker_options": {"nthreads": 2, "memory_limit": "3GB"},
    "scheduler_options": {"idle_timeout": "30m"},
    "security": True,
    "protocol": "tls",
    "debug": False,
    "auto_shutdown": False,
    "silence_logs": False,
    "scheduler_sync_interval": 2,
    "shutdown_scheduler": True,
    "shutdown_on_close": True,
}


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path / "state"
    monkeypatch.setenv("SCHERBELBERG_STATE_DIR", str(state))
    for name in ("HETZNER", "HCLOUD_TOKEN", "HCLOUD_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    yield state
    assert not list(state.glob("*/state.json"))  # nothing was made


def cloudprovider_arguments() -> set[str]:
    """Every argument name dask-cloudprovider's HetznerCluster takes (its own, VMCluster's,
    SpecCluster's), read from the installed dask-cloudprovider."""
    names: set[str] = set()
    for cls in (CloudproviderCluster, VMCluster, SpecCluster):
        parameters = inspect.signature(cls.__init__).parameters
        names |= {n for n, p in parameters.items() if n != "self" and p.kind is p.KEYWORD_ONLY}
        names |= {
            n for n, p in parameters.items() if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
        }
    # documented in its docstring, read from its config, or a class attribute users set
    return names | {"worker_module", "token", "auto_shutdown"}


def test_every_cloudprovider_argument_is_decided() -> None:
    decided = set(REFUSED) | set(ACCEPTED) | {"asynchronous", "loop"}
    assert cloudprovider_arguments() <= decided, cloudprovider_arguments() - decided


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_argument_is_one_line_naming_the_equivalent(name: str) -> None:
    value, equivalent = REFUSED[name]
    with pytest.raises(ArgumentError) as raised:
        HetznerCluster(n_workers=1, **NOWHERE, **{name: value})
    message = str(raised.value)
    assert isinstance(raised.value, TypeError) and isinstance(raised.value, ConfigError)
    assert "\n" not in message
    assert f"HetznerCluster({name}=" in message
    assert equivalent in message, message


async def test_accepted_arguments_have_dask_cloudprovider_meaning() -> None:
    cluster = HetznerCluster(**{**ACCEPTED, **NOWHERE}, asynchronous=True)
    s = cluster.settings
    # server_type: both the scheduler's and the workers' (dask-cloudprovider has one type)
    assert (s.scheduler_type_name, s.worker_type_name) == ("cx23", "cx23")
    assert s.sources["worker-server-type"] == "argument server_type="
    assert (s.location, s.image_name) == ("nbg1", "debian-12")
    assert cluster.name == "sbg-migrated" and cluster._n_workers == 2
    assert (s.worker_nthreads, s.worker_memory) == (2, "3GB")
    assert s.env.extra_packages == ("xarray", "zarr>=2.18")  # EXTRA_PIP_PACKAGES
    assert cluster.lifetime_settings.idle_timeout == 1800
    assert cluster.session.token == "not-a-token"
    with pytest.raises(HetznerError, match="cannot reach the Hetzner API"):
        await cluster  # the first request: the arguments were all taken


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"server_type": "cx23", "worker_server_type": "cx33"},
            "server_type= sets scheduler_server_type= and worker_server_type=",
        ),
        (
            {"worker_options": {"nthreads": 2}, "worker_nthreads": 4},
            "pass either worker_options= or worker_nthreads=",
        ),
        (
            {"env_vars": {"EXTRA_PIP_PACKAGES": "xarray"}, "extra_packages": ["zarr"]},
            "pass either env_vars= or extra_packages=",
        ),
    ],
)
def test_both_names_for_one_setting_is_a_conflict(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        HetznerCluster(**NOWHERE, **kwargs)


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("n_worker", "did you mean n_workers=?"),
        ("worker_server_typ", "did you mean worker_server_type=?"),
        ("extra_package", "did you mean extra_packages=?"),
        ("locaton", "did you mean location=?"),
        ("instance_type", "its arguments: docs/cluster.md"),  # other providers' names
    ],
)
def test_unknown_keyword_says_did_you_mean(name: str, suggestion: str) -> None:
    unknown: dict[str, Any] = {name: "x"}
    with pytest.raises(ArgumentError) as raised:
        HetznerCluster(**NOWHERE, **unknown)
    assert f"unexpected keyword argument {name!r}" in str(raised.value)
    assert suggestion in str(raised.value)


@pytest.mark.parametrize("n", [-1, "2", 1.5, True])
def test_worker_count_is_checked_as_the_cli_does(n: object) -> None:
    with pytest.raises(ConfigError, match=r"^n_workers must be a whole number .*0 or more"):
        HetznerCluster(n, **NOWHERE)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_workers"):
        HetznerCluster(n_workers=n, **NOWHERE)  # type: ignore[arg-type]


async def test_scale_to_a_negative_count_is_refused() -> None:
    cluster = HetznerCluster(**NOWHERE, asynchronous=True)
    with pytest.raises(ConfigError, match=r"scale\(n\) must be a whole number .* not -1"):
        cluster.scale(-1)
    with pytest.raises(HetznerError, match="cannot reach"):
        await cluster


async def test_cloudprovider_token_config_is_the_last_resort() -> None:
    with dask.config.set({"cloudprovider.hetzner.token": "from-cloudprovider"}):
        cluster = HetznerCluster(endpoint=NOWHERE["endpoint"], asynchronous=True)
        assert cluster.session.token == "from-cloudprovider"
        with pytest.raises(HetznerError):
            await cluster
        os.environ["HCLOUD_TOKEN"] = "from-environment"  # scherbelberg's own sources first
        try:
            cluster = HetznerCluster(endpoint=NOWHERE["endpoint"], asynchronous=True)
            assert cluster.session.token == "from-environment"
            with pytest.raises(HetznerError):
                await cluster
        finally:
            del os.environ["HCLOUD_TOKEN"]
