"""Spread placement groups: each member on another host, at most ten members."""

from __future__ import annotations

from typing import Any

from .errors import ApiError, invalid_input, not_found
from .records import PlacementGroup
from .validation import check_labels, check_name, update_name_and_labels
from .world import Project, World, check_released


def get(project: Project, group_id: int) -> PlacementGroup:
    group = project.placement_groups.get(group_id)
    if group is None:
        raise not_found("placement_group", group_id)
    return group


def create(world: World, project: Project, body: dict[str, Any]) -> PlacementGroup:

    name = check_name(list(project.placement_groups.values()), body.get("name"))
    if body.get("type") != "spread":
        raise invalid_input("type", "type must be spread")
    labels = check_labels(body.get("labels"))
    project.check_limit("placement_groups", len(project.placement_groups))
    group = PlacementGroup(
        id=world.new_id(), name=name, type="spread", labels=labels, created=world.now()
    )
    project.placement_groups[group.id] = group
    return group


def update(project: Project, group_id: int, body: dict[str, Any]) -> PlacementGroup:
    group = get(project, group_id)
    update_name_and_labels(group, project.placement_groups.values(), body)
    return group


def delete(project: Project, group_id: int) -> None:
    group = get(project, group_id)
    if group.servers:
        raise ApiError("resource_in_use", f"placement group {group.name} still has servers")
    check_released(project, "placement_groups", group.id, f"placement group {group.name}")
    del project.placement_groups[group_id]
