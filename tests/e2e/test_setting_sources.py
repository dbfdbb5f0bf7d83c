"""Must show 6: a setting the API refuses is named with where its value came from (argument,
dask config or environment variable, default), before anything is created."""

from __future__ import annotations

import dask.config
import pytest

from scherbelberg import HetznerCluster
from scherbelberg.errors import ConfigError
from tests.e2e.conftest import Target


def test_a_requirement_nothing_meets_says_it_is_the_default(target: Target) -> None:
    """The default types are requirements (issue 9); one that nothing in the location or its
    network zone meets is named with where it came from, and what can be had there."""
    with (
        dask.config.set({"scherbelberg.scheduler-requirement": {"cores": 999, "memory": 4}}),
        pytest.raises(ConfigError) as raised,
    ):
        HetznerCluster(location="ash", **target.cluster_kwargs)
    message = str(raised.value)
    assert message.startswith(
        "scheduler server type with 999+ cores, 4+ GB, x86 "
        "(scherbelberg.scheduler-requirement) is not available in location 'ash' "
        "(argument location=); types offered there: "
    ), message
    offered = message.split("types offered there: ")[1].split(", ")
    assert "cpx22" in offered and "cx23" not in offered and "cax11" not in offered
    assert "cpx11" not in offered  # deprecated: not a type to suggest
    assert "\n" not in message
    assert target.leftovers() == []


def test_type_from_the_config_is_named_as_such(target: Target) -> None:
    with (
        dask.config.set({"scherbelberg.worker-server-type": "cx99"}),
        pytest.raises(ConfigError) as raised,
    ):
        HetznerCluster(**target.cluster_kwargs)
    assert str(raised.value) == (
        "unknown server type 'cx99' for the worker server type (from the dask config "
        "scherbelberg.worker-server-type); see `scherbelberg catalog` for the current types"
    )
    assert target.leftovers() == []


def test_server_type_names_both_roles(target: Target) -> None:
    with pytest.raises(ConfigError) as raised:
        HetznerCluster(server_type="cx23", location="ash", **target.cluster_kwargs)
    assert str(raised.value).startswith(
        "scheduler and worker server type 'cx23' (argument server_type=) is not "
        "available in location 'ash' (argument location=)"
    )
    assert target.leftovers() == []
