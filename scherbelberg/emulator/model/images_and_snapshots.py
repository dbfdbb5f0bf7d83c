"""Images: the catalog's system images plus each project's own snapshots."""

from __future__ import annotations

from typing import Any

from . import static_catalog
from .errors import ApiError, not_found
from .records import Snapshot
from .validation import check_labels
from .world import Project, World


def os_of(project: Project, image_id: int | None) -> tuple[str, str | None]:
    """OS flavor and version of a system image or snapshot (what a snapshot inherits)."""
    if image_id is None:
        return "unknown", None
    snapshot = project.snapshots.get(image_id)
    if snapshot is not None:
        return snapshot.os_flavor, snapshot.os_version
    image = static_catalog.find_system_image(image_id, None)
    if image is None:
        return "unknown", None
    return image.os_flavor, image.os_version


def get_snapshot(project: Project, image_id: int) -> Snapshot:
    snapshot = project.snapshots.get(image_id)
    if snapshot is None:
        if static_catalog.find_system_image(image_id, None) is not None:
            raise ApiError("forbidden", "system images cannot be changed or deleted")
        raise not_found("image", image_id)
    return snapshot


def update(project: Project, image_id: int, body: dict[str, Any]) -> Snapshot:

    snapshot = get_snapshot(project, image_id)
    if "description" in body:
        snapshot.description = str(body["description"])
    if "labels" in body:
        snapshot.labels = check_labels(body["labels"])
    if body.get("type") == "snapshot":
        snapshot.type, snapshot.bound_to = "snapshot", None
    return snapshot


def delete(world: World, project: Project, image_id: int) -> None:
    get_snapshot(project, image_id)
    # Hetzner lets a snapshot go while servers made from it live on; the backend keeps the
    # disk layer until its last machine is destroyed.
    del project.snapshots[image_id]
    world.runner.spawn(world.backend.delete_image(image_id))
