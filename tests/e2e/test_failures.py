"""Must show 6 and 7: a failing bootstrap fails fast with the node's log and leaves nothing;
bad input gives one clear line and creates nothing."""

from __future__ import annotations

import time

import pytest

from scherbelberg import HetznerCluster
from scherbelberg.errors import BootstrapError, ConfigError, HetznerError
from tests.e2e.conftest import Target


def test_bad_extra_package_fails_fast_with_the_log(target: Target) -> None:
    started = time.monotonic()
    with pytest.raises(BootstrapError) as raised:
        HetznerCluster(
            n_workers=1,
            extra_packages=["scherbelberg-no-such-package-xyz==1.0"],
            **target.cluster_kwargs,
        )
    message = str(raised.value)
    assert "scheduler" in message.splitlines()[0]
    assert "scherbelberg-no-such-package-xyz" in message  # the node's own log tail
    assert time.monotonic() - started < 300
    assert target.leftovers() == []


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"scheduler_server_type": "cx99"}, "unknown server type 'cx99'"),
        ({"worker_server_type": "nope"}, "unknown server type 'nope'"),
        ({"location": "mars1"}, "unknown location 'mars1'"),
        ({"image": "windows-95"}, "unknown image 'windows-95'"),
    ],
)
def test_bad_input_is_one_line_and_creates_nothing(
    target: Target, override: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        HetznerCluster(n_workers=1, **{**target.cluster_kwargs, **override})
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)
    assert target.leftovers() == []


def test_missing_and_rejected_tokens(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = {k: v for k, v in target.cluster_kwargs.items() if k != "token"}
    with pytest.raises(ConfigError) as missing:
        HetznerCluster(n_workers=1, **kwargs)
    assert "no Hetzner API token" in str(missing.value)
    with pytest.raises(HetznerError) as rejected:
        HetznerCluster(n_workers=1, token="0" * 64, **kwargs)
    assert "rejected" in str(rejected.value)
    assert "\n" not in str(rejected.value)
    assert target.leftovers() == []
