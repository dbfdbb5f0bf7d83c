"""What every handler needs: its project, its JSON body, list rendering and id parsing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from ..model.errors import ApiError, not_found
from ..model.label_selectors import parse_selector
from ..model.world import Project, World
from .listing import SORT_FIELDS, list_page

WORLD: web.AppKey[World] = web.AppKey("world", World)
PROJECT_KEY = "project"


def world_of(request: web.Request) -> World:
    return request.app[WORLD]


def project_of(request: web.Request) -> Project:
    project = request.get(PROJECT_KEY)
    assert isinstance(project, Project), "auth middleware did not run"
    return project


async def body_of(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError("json_error", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError("json_error", "the request body must be a JSON object")
    return body


def path_id(request: web.Request, name: str = "id", kind: str = "resource") -> int:
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()):  # "²" is a digit to str.isdigit, not to int()
        raise not_found(kind, raw)
    return int(raw)


def ok(
    data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(data, status=status, headers=headers)


def filter_by(
    items: Iterable[dict[str, Any]],
    request: web.Request,
    *,
    name: bool = True,
    labels: Callable[[dict[str, Any]], dict[str, str]] | None = None,
    **exact: str,
) -> list[dict[str, Any]]:
    """Apply the common list filters: `name`, `label_selector` and exact-match fields.

    `exact` maps a query parameter to the JSON key it filters (repeatable parameters match any).
    """
    result = list(items)
    query = request.query
    if name and "name" in query:
        result = [item for item in result if item.get("name") == query["name"]]
    if "label_selector" in query:
        try:
            selector = parse_selector(query["label_selector"])
        except ValueError as exc:
            raise ApiError(
                "invalid_input",
                f"invalid label_selector: {exc}",
                {"fields": [{"name": "label_selector", "messages": [str(exc)]}]},
            ) from None
        get_labels = labels or (lambda item: item.get("labels") or {})
        result = [item for item in result if selector.matches(get_labels(item))]
    for param, key in exact.items():
        wanted = query.getall(param, [])
        if wanted:
            result = [item for item in result if str(item.get(key)) in wanted]
    return result


def listed(
    request: web.Request,
    key: str,
    items: list[dict[str, Any]],
    resource: str | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    page = list_page(
        items,
        request.query,
        allowed_sort=SORT_FIELDS.get(resource or key, frozenset({"id"})),
        base_url=str(request.url),
    )
    headers = {"Link": page.link} if page.link else None
    return ok({key: page.items, **(extra or {}), "meta": page.meta}, headers=headers)
