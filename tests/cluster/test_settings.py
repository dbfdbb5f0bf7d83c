"""Constructor arguments override the scherbelberg dask config; env vars reach it too."""

from __future__ import annotations

import dask.config
import pytest

from scherbelberg import config  # also registers the defaults
from scherbelberg.cluster import system_image
from scherbelberg.cluster.settings import resolve, resolve_again
from scherbelberg.errors import ConfigError


def sourced(value: str) -> config.Sourced:
    """A setting typed as str, which carries where it came from (a config.Sourced)."""
    assert isinstance(value, config.Sourced), f"{value!r} does not say where it came from"
    return value


def test_defaults_are_requirements_and_a_supported_image() -> None:
    """No fixed type names: Hetzner runs out of whole families at times (issue 9)."""
    settings = resolve()
    assert settings.scheduler_wish.names == () and settings.worker_wish.names == ()
    assert str(settings.scheduler_wish.requirement) == "2+ cores, 4+ GB, x86"
    assert str(settings.worker_wish.requirement) == "4+ cores, 8+ GB, x86"
    # image: auto picks the image whose system Python is the client's (3.11 here: debian-12)
    assert settings.image_name == system_image.choose(settings.env.python).name
    assert settings.env.method == "pip"


@pytest.mark.parametrize(
    ("python", "image", "installs_python"),
    [
        ("3.11", "debian-12", False),
        ("3.13", "debian-13", False),
        ("3.12", "ubuntu-24.04", False),
        ("3.14", "debian-13", True),
    ],
)
def test_auto_image_by_client_python(python: str, image: str, installs_python: bool) -> None:
    """Most nodes install no interpreter; the choice says why (issue 10)."""
    chosen = system_image.choose(python)
    assert chosen.name == image
    assert ("uv-managed" in chosen.reason) is installs_python
    assert python in chosen.reason


def test_auto_image_is_said_and_stored_as_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system_image, "SYSTEM_PYTHONS", {"debian-12": "3.0"})
    settings = resolve()
    assert settings.image_name == system_image.FALLBACK
    assert settings.image_note is not None and "uv-managed" in settings.image_note
    assert "auto" in sourced(settings.image_name).source
    assert settings.as_dict()["image"] == system_image.FALLBACK
    explicit = resolve(image="debian-12")
    assert explicit.image_name == "debian-12" and explicit.image_note is None


def test_a_re_attach_keeps_the_image_and_that_auto_chose_it() -> None:
    """The stored name is used again, and the workers a re-attach adds still look for
    environment images; an image given again is the user's own choice."""
    stored = resolve().as_dict()
    assert stored["image_auto"] is True
    again = resolve_again({}, stored)
    assert again.image_name == stored["image"] and again.image_auto
    assert not resolve_again({"image": "debian-13"}, stored).image_auto


@pytest.mark.parametrize(
    ("given", "names"),
    [
        ("cx33", ("cx33",)),
        ("cx33, cpx32", ("cx33", "cpx32")),
        (["cax21", "cpx32"], ("cax21", "cpx32")),
    ],
)
def test_server_types_in_order_of_preference(given: object, names: tuple[str, ...]) -> None:
    wish = resolve(worker_server_type=given).worker_wish  # type: ignore[arg-type]
    assert wish.names == names
    assert wish.source == "argument worker_server_type="


def test_config_then_arguments() -> None:
    with dask.config.set({"scherbelberg.location": "hel1", "scherbelberg.worker.processes": 2}):
        assert resolve().location == "hel1"
        assert resolve().worker_processes == 2
        assert resolve(location="nbg1").location == "nbg1"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASK_SCHERBELBERG__WORKER_SERVER_TYPE", "cpx32")
    monkeypatch.setenv("DASK_SCHERBELBERG__PIP_INDEX_URL", "http://mirror.example/simple/")
    downloads = "http://mirror.example/python/downloads.json"
    monkeypatch.setenv("DASK_SCHERBELBERG__PYTHON_DOWNLOADS_JSON_URL", downloads)
    dask.config.refresh()
    try:
        settings = resolve()
        assert settings.worker_type_name == "cpx32"
        assert settings.env.index_url == "http://mirror.example/simple/"
        # what the local Hetzner prints reaches the nodes' uv, and is kept for from_existing
        assert settings.env.python_downloads_json_url == downloads
        assert settings.as_dict()["python_downloads_json_url"] == downloads
    finally:
        monkeypatch.delenv("DASK_SCHERBELBERG__WORKER_SERVER_TYPE")
        monkeypatch.delenv("DASK_SCHERBELBERG__PIP_INDEX_URL")
        monkeypatch.delenv("DASK_SCHERBELBERG__PYTHON_DOWNLOADS_JSON_URL")
        dask.config.refresh()
    assert resolve().env.python_downloads_json_url is None  # uv's own list by default
    argument = resolve(python_downloads_json_url=downloads)
    assert argument.env.python_downloads_json_url == downloads


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env_method": "apt"}, "env method must be auto, pip or conda"),
        ({"env_method": "conda"}, "is not in one: it has no conda-meta/ (argument env_method="),
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
    # what the catalog checks quote
    assert sourced(settings.location).source == "argument location="
    assert settings.sources["scheduler-server-type"] == (
        "the default; set scheduler_server_type= or scherbelberg.scheduler-server-type"
    )
    assert settings.scheduler_wish.source == "scherbelberg.scheduler-requirement"
    named = sourced(resolve(scheduler_server_type="cpx22").scheduler_wish.names[0])
    assert named.what == "scheduler server type"
    assert named.source == "argument scheduler_server_type="
    with dask.config.set({"scherbelberg.worker-server-type": "cpx32"}):
        assert resolve().sources["worker-server-type"] == (
            "from the dask config scherbelberg.worker-server-type"
        )
    monkeypatch.setenv("DASK_SCHERBELBERG__IMAGE", "debian-13")
    dask.config.refresh()
    try:
        assert (
            sourced(resolve().image_name).source
            == "from the environment variable DASK_SCHERBELBERG__IMAGE"
        )
    finally:
        monkeypatch.delenv("DASK_SCHERBELBERG__IMAGE")
        dask.config.refresh()
    assert sourced(resolve().image_name).source.startswith("the default")


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
