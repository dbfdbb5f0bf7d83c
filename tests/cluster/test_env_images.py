"""Environment images as the API lists them, and which of them `image prune` deletes."""

from __future__ import annotations

from typing import Any

from scherbelberg.bootstrap import EnvSpec
from scherbelberg.cluster import env_images
from scherbelberg.cluster.env_images import EnvImage, env_hash, prune_plan

DAY = 86400.0
NOW = 1_800_000_000.0
ENV = EnvSpec(method="pip", python="3.11", pins=(("dask", "2026.8.0"),))


def api_image(
    image_id: int,
    env: str,
    created_days_ago: float,
    used_days_ago: float | None = None,
    status: str = "available",
) -> dict[str, Any]:
    from datetime import UTC, datetime

    created = datetime.fromtimestamp(NOW - created_days_ago * DAY, UTC).isoformat()
    found = {"scherbelberg/managed": "true", env_images.ENV_IMAGE: env}
    if used_days_ago is not None:
        found[env_images.LAST_USED] = str(int(NOW - used_days_ago * DAY))
    return {
        "id": image_id,
        "type": "snapshot",
        "status": status,
        "created": created,
        "architecture": "x86",
        "image_size": 2.0,
        "description": f"image {image_id}",
        "labels": found,
    }


def plan(data: list[dict[str, Any]], keep: int = 1, unused_days: float | None = 30) -> list[int]:
    found = [EnvImage.from_api(d) for d in data]
    unused = None if unused_days is None else unused_days * DAY
    return [image.id for image, _ in prune_plan(found, keep=keep, unused_for=unused, now=NOW)]


def test_read_from_the_api() -> None:
    data = api_image(7, "abc", created_days_ago=3, used_days_ago=1)
    data["labels"][env_images.BASE_IMAGE] = "debian-12"
    data["labels"][env_images.PYTHON] = "3.11"
    image = EnvImage.from_api(data)
    assert (image.id, image.env_hash, image.base_image, image.python) == (
        7,
        "abc",
        "debian-12",
        "3.11",
    )
    assert round(NOW - image.created) == 3 * DAY and round(NOW - image.last_used) == DAY
    # never booted from: last used when it was made
    assert EnvImage.from_api(api_image(8, "abc", created_days_ago=5)).last_used == NOW - 5 * DAY


def test_matches_its_own_environment_architecture_and_base() -> None:
    data = api_image(1, env_hash(ENV, "x86", "debian-12"), created_days_ago=0)
    data["labels"][env_images.BASE_IMAGE] = "debian-12"
    assert EnvImage.from_api(data).matches(ENV)
    data["labels"][env_images.BASE_IMAGE] = "debian-13"
    assert not EnvImage.from_api(data).matches(ENV)


def test_keeps_the_newest_of_each_environment() -> None:
    data = [
        api_image(1, "a", created_days_ago=3),
        api_image(2, "a", created_days_ago=2),
        api_image(3, "a", created_days_ago=1),
        api_image(4, "b", created_days_ago=5),
    ]
    assert plan(data) == [1, 2]
    assert plan(data, keep=2) == [1]
    assert plan(data, keep=0) == [1, 2, 3, 4]


def test_deletes_what_no_cluster_used_for_long() -> None:
    data = [
        api_image(1, "a", created_days_ago=60, used_days_ago=45),  # forgotten
        api_image(2, "b", created_days_ago=60, used_days_ago=2),  # old but in use
        api_image(3, "c", created_days_ago=40),  # never used since made, 40 days ago
    ]
    assert plan(data) == [1, 3]
    assert plan(data, unused_days=50) == []
    assert plan(data, unused_days=None) == []


def test_never_an_image_being_made() -> None:
    data = [
        api_image(1, "a", created_days_ago=90, status="creating"),
        api_image(2, "a", created_days_ago=1),
    ]
    assert plan(data, keep=0) == [2]


def test_every_choice_says_why() -> None:
    found = [
        EnvImage.from_api(api_image(1, "a", created_days_ago=2)),
        EnvImage.from_api(api_image(2, "a", created_days_ago=1)),
        EnvImage.from_api(api_image(3, "b", created_days_ago=50)),
    ]
    chosen = prune_plan(found, keep=1, unused_for=30 * DAY, now=NOW)
    assert [(i.id, r) for i, r in chosen] == [
        (1, "not among the newest 1 of its environment"),
        (3, "not used for 50.0 days"),
    ]
