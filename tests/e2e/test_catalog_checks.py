"""Server types and images are checked against the API: deprecated types warn, arm types get
the arm image of the same name."""

from __future__ import annotations

import asyncio

import pytest

from scherbelberg.errors import ConfigError
from scherbelberg.hetzner import lookups
from scherbelberg.hetzner.session import HetznerSession
from tests.e2e.conftest import Target


def test_deprecated_type_warns_and_arm_gets_arm_image(target: Target) -> None:
    session = HetznerSession(target.token, target.endpoint)

    async def check() -> None:
        with pytest.warns(FutureWarning, match="deprecated"):
            legacy = await lookups.server_type(session, "cx22", "fsn1")
        assert legacy.deprecated
        current = await lookups.server_type(session, "cx23", "fsn1")
        assert not current.deprecated and current.price_hourly
        arm = await lookups.server_type(session, "cax11", "fsn1")
        assert arm.architecture == "arm"
        arm_image = await lookups.image(session, "debian-12", "arm")
        x86_image = await lookups.image(session, "debian-12", "x86")
        assert arm_image.id != x86_image.id
        assert (arm_image.architecture, x86_image.architecture) == ("arm", "x86")
        with pytest.raises(ConfigError, match="not available in location 'ash'"):
            await lookups.server_type(session, "cax11", "ash")  # arm is sold in the EU only

    asyncio.run(check())
