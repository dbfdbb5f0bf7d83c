"""TTL and idle timeout: durations as users write them, labels that carry them, and when the
node reaper decides that a cluster must go."""

from __future__ import annotations

import pytest

from scherbelberg.bootstrap.node_reaper import due
from scherbelberg.cluster.lifetime import (
    Lifetime,
    format_duration,
    idle_seconds,
    parse_duration,
    resolve,
)
from scherbelberg.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("2m", 120), ("8h", 28800), ("1d", 86400), (45, 45)]
)
def test_durations_as_users_write_them(text: str | int, seconds: float) -> None:
    assert parse_duration(text, "ttl") == seconds


@pytest.mark.parametrize("text", ["5x", "-3m", "0s", "soon"])
def test_bad_durations_name_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^ttl"):
        parse_duration(text, "ttl")


def test_format_duration_round_trips() -> None:
    for text in ("90s", "2m", "8h", "1d"):
        seconds = parse_duration(text, "x")
        assert seconds is not None
        assert parse_duration(format_duration(seconds), "x") == seconds


def test_labels_carry_the_lifetime() -> None:
    life = Lifetime.start(ttl=120, idle_timeout=60, reaper="node", now=1000)
    assert life.labels() == {
        "scherbelberg/expires": "1120",
        "scherbelberg/idle-timeout": "60",
        "scherbelberg/reaper": "node",
    }
    assert Lifetime.from_labels(life.labels()) == life
    assert not life.expired(now=1119) and life.expired(now=1120)
    assert Lifetime.from_labels({}) == Lifetime() and not Lifetime().limited


def test_node_reaper_needs_something_to_enforce() -> None:
    with pytest.raises(ConfigError, match="reaper='node' needs a ttl or an idle_timeout"):
        resolve(reaper="node")
    with pytest.raises(ConfigError, match="reaper must be"):
        resolve(ttl="1h", reaper="cron")


def test_idle_means_no_tasks_and_no_clients() -> None:
    assert idle_seconds({"busy": False, "clients": 0, "idle_for": 70.0}) == 70.0
    assert idle_seconds({"busy": True, "clients": 0, "idle_for": None}) is None
    assert idle_seconds({"busy": False, "clients": 1, "idle_for": 0.0}) is None


def test_node_reaper_decides() -> None:
    config = {"expires": None, "idle_timeout": 60, "installed": 1000}
    fresh = {"time": 1995, "busy": False, "clients": 0, "idle_for": 61}
    assert due({**config, "expires": 2000}, 2000, None) == "ttl"
    assert due(config, 2000, fresh) == "idle"
    assert due(config, 2000, {**fresh, "idle_for": 30}) is None
    assert due(config, 2000, {**fresh, "busy": True, "idle_for": None}) is None
    assert due(config, 2000, {**fresh, "clients": 2}) is None
    # a scheduler that stopped reporting is as idle as one with nothing to do
    assert due(config, 2000, {**fresh, "time": 1900, "busy": True}) == "idle"
    assert due(config, 1050, None) is None  # no status yet, 50 s after the reaper came
    assert due(config, 1061, None) == "idle"
