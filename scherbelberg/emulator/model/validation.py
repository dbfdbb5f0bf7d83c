"""Checks every resource's create and update share: its labels and its name (unique per kind
in a project), answering with Hetzner's `invalid_input` and `uniqueness_error`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from .errors import invalid_input, uniqueness_error
from .label_selectors import validate_labels


def check_labels(labels: Any, field: str = "labels") -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise invalid_input(field, "labels must be an object of strings")
    problems = validate_labels(labels)
    if problems:
        raise invalid_input(field, "; ".join(problems))
    return dict(labels)


def check_name(project_items: Any, name: Any, kind_field: str = "name") -> str:
    if not isinstance(name, str) or not name:
        raise invalid_input(kind_field, "name is required")
    if any(item.name == name for item in project_items):
        raise uniqueness_error(kind_field)
    return name


class Named(Protocol):
    name: str
    labels: dict[str, str]


def update_name_and_labels(item: Named, siblings: Iterable[Named], body: dict[str, Any]) -> None:
    """The part of an update every named resource shares: a new name (unique among
    `siblings`, the project's items of the same kind) and new labels."""
    if "name" in body and body["name"] != item.name:
        item.name = check_name(list(siblings), body["name"])
    if "labels" in body:
        item.labels = check_labels(body["labels"])
