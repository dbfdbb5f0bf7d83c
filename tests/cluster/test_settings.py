"""Constructor arguments override the scherbelberg dask config; env vars reach it too."""

from __future__ import annotations

import dask.config
import pytest

from scherbelberg import config  # noqa: F401 - registers the defaults
from scherbelberg.cluster.settings import resolve
from scherbelberg.hetzner.errors import ConfigError


def test_defaults_are_current_types_and_a_supported_image() -> None:
    settings = resolve()
    assert settings.scheduler_type_name == "cx23"
    assert settings.worker_type_name == "cx33"
    assert settings.image_name == "debian-12"
    assert settings.env.method == "pip"


def test_config_then_arguments() -> None:
    with dask.config.set({"scherbelberg.location": "hel1", "scherbelberg.worker.processes": 2}):
        assert resolve().location == "hel1"
        assert resolve().worker_processes == 2
        assert resolve(location="nbg1").location == "nbg1"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASK_SCHERBELBERG__WORKER_SERVER_TYPE", "cpx32")
    monkeypatch.setenv("DASK_SCHERBELBERG__PIP_INDEX_URL", "http://mirror.example/simple/")
    dask.config.refresh()
    try:
        settings = resolve()
        assert settings.worker_type_name == "cpx32"
        assert settings.env.index_url == "http://mirror.example/simple/"
    finally:
        monkeypatch.delenv("DASK_SCHERBELBERG__WORKER_SERVER_TYPE")
        monkeypatch.delenv("DASK_SCHERBELBERG__PIP_INDEX_URL")
        dask.config.refresh()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env_method": "apt"}, "env method must be pip or conda"),
        ({"network_cidr": "8.8.8.0/24"}, "must be a private range"),
        ({"network_cidr": "nonsense"}, "is not an IPv4 network"),
        ({"worker_processes": 0}, "at least 1"),
    ],
)
def test_bad_settings_are_one_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(**kwargs)  # type: ignore[arg-type]
    assert message in str(raised.value)


def test_each_setting_says_where_it_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = resolve(location="nbg1")
    assert settings.sources["location"] == "argument location="
    assert settings.location.source == "argument location="  # what the catalog checks quote
    assert settings.scheduler_type_name.source == (
        "the default; set scheduler_server_type= or scherbelberg.scheduler-server-type"
    )
    assert settings.scheduler_type_name.what == "scheduler server type"
    with dask.config.set({"scherbelberg.worker-server-type": "cpx32"}):
        assert resolve().sources["worker-server-type"] == (
            "from the dask config scherbelberg.worker-server-type"
        )
    monkeypatch.setenv("DASK_SCHERBELBERG__IMAGE", "debian-13")
    dask.config.refresh()
    try:
        assert (
            resolve().image_name.source == "from the environment variable DASK_SCHERBELBERG__IMAGE"
        )
    finally:
        monkeypatch.delenv("DASK_SCHERBELBERG__IMAGE")
        dask.config.refresh()
    assert resolve().image_name.source.startswith("the default")


def test_bad_setting_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DASK_SCHERBELBERG__WORKER__PROCESSES", "0")
    dask.config.refresh()
    try:
        with pytest.raises(ConfigError) as raised:
            resolve()
    finally:
        monkeypatch.delenv("DASK_SCHERBELBERG__WORKER__PROCESSES")
        dask.config.refresh()
    assert str(raised.value) == (
        "worker processes per server must be a whole number of at least 1, not 0 "
        "(from the environment variable DASK_SCHERBELBERG__WORKER__PROCESSES)"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env_method": "apt"}, "not 'apt' (argument env_method=)"),
        ({"network_cidr": "8.8.8.0/24"}, "8.8.8.0/24 (argument network_cidr=) must be"),
        ({"worker_processes": "two"}, "not 'two' (argument worker_processes=)"),
        ({"worker_nthreads": 0}, "worker threads must be a whole number of at least 1"),
    ],
)
def test_bad_argument_is_named_as_an_argument(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(**kwargs)  # type: ignore[arg-type]
    assert message in str(raised.value)
