"""Pagination and sorting shared by every list endpoint of the local Hetzner.

Query parameters, as Hetzner takes them:

- `page`: the page to return, counting from 1 (default 1).
- `per_page`: entries per page, 1 to 50 (default 25); larger values are clamped to 50.
- `sort`: `field`, `field:asc` or `field:desc`, repeatable; the first is the primary key.

Bodies carry `meta.pagination` with exactly the six keys `page, per_page, previous_page,
next_page, last_page, total_entries` (hcloud-python builds `Pagination(**...)` from it and fails
on any other key), and responses a `Link` header with `rel="prev"`, `"next"` and `"last"`.

Everything takes any `Mapping[str, str]` for the query; repeated parameters are read through a
`getall` method when the mapping has one (aiohttp's `MultiDictProxy`, `multidict.MultiDict`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from scherbelberg.errors import EmulatorError

__all__ = [
    "ACTION_SORT_FIELDS",
    "DEFAULT_PER_PAGE",
    "MAX_PER_PAGE",
    "SORT_FIELDS",
    "InvalidInput",
    "ListParams",
    "Page",
    "Pagination",
    "SortKey",
    "link_header",
    "list_page",
    "paginate",
    "parse_list_params",
    "parse_page",
    "parse_per_page",
    "parse_sort",
    "sort_items",
]

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 50

ACTION_SORT_FIELDS = frozenset({"id", "command", "status", "started", "finished"})
_ID_NAME = frozenset({"id", "name"})
_ID_NAME_CREATED = frozenset({"id", "name", "created"})
_ID_CREATED = frozenset({"id", "created"})

# Sort fields each list endpoint accepts, per the OpenAPI spec (keyed by the resource's path
# segment; "actions" covers /actions and every /<resource>/actions list).
SORT_FIELDS: dict[str, frozenset[str]] = {
    "actions": ACTION_SORT_FIELDS,
    "certificates": _ID_NAME_CREATED,
    "datacenters": _ID_NAME,
    "firewalls": _ID_NAME_CREATED,
    "floating_ips": _ID_CREATED,
    "images": _ID_NAME_CREATED,
    "load_balancers": _ID_NAME_CREATED,
    "locations": _ID_NAME,
    "networks": _ID_NAME_CREATED,
    "placement_groups": _ID_NAME_CREATED,
    "primary_ips": _ID_CREATED,
    "server_types": _ID_NAME,
    "servers": _ID_NAME_CREATED,
    "ssh_keys": _ID_NAME,
    "volumes": _ID_NAME_CREATED,
}


class InvalidInput(EmulatorError):
    """A query parameter is malformed; the API answers 422 `invalid_input` naming `field`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = False

    def __str__(self) -> str:
        return f"{self.field}:{'desc' if self.descending else 'asc'}"


@dataclass(frozen=True)
class ListParams:
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    sort: tuple[SortKey, ...] = ()


@dataclass(frozen=True)
class Pagination:
    page: int
    per_page: int
    previous_page: int | None
    next_page: int | None
    last_page: int
    total_entries: int

    @classmethod
    def compute(cls, page: int, per_page: int, total_entries: int) -> Pagination:
        """Pagination of `total_entries` items; an empty list still has one (empty) page.

        A page beyond the end is allowed: it is empty, has no next page and its previous page
        is `page - 1`.
        """
        last_page = max(1, -(-total_entries // per_page))
        return cls(
            page=page,
            per_page=per_page,
            previous_page=page - 1 if page > 1 else None,
            next_page=page + 1 if page < last_page else None,
            last_page=last_page,
            total_entries=total_entries,
        )

    def meta(self) -> dict[str, Any]:
        """The `meta` object of a list body: `{"pagination": {...six keys...}}`."""
        return {
            "pagination": {
                "page": self.page,
                "per_page": self.per_page,
                "previous_page": self.previous_page,
                "next_page": self.next_page,
                "last_page": self.last_page,
                "total_entries": self.total_entries,
            }
        }


T = TypeVar("T")
M = TypeVar("M", bound=Mapping[str, Any])


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    pagination: Pagination
    link: str | None = None

    @property
    def meta(self) -> dict[str, Any]:
        return self.pagination.meta()


# --------------------------------------------------------------------------- parsing


_INT_RE = re.compile(r"-?[0-9]+")


def _getall(query: Mapping[str, str], key: str) -> list[str]:
    getall = getattr(query, "getall", None)
    if callable(getall):
        return [str(v) for v in getall(key, [])]
    value = query.get(key)
    return [] if value is None else [value]


def _parse_int(query: Mapping[str, str], field: str) -> int | None:
    raw = query.get(field)
    if raw is None:
        return None
    # int() would also take "1_000", "+3" and non-ASCII digits
    if not _INT_RE.fullmatch(raw.strip()):
        raise InvalidInput(field, f"must be an integer, got {raw!r}")
    return int(raw)


def parse_page(query: Mapping[str, str]) -> int:
    page = _parse_int(query, "page")
    if page is None:
        return 1
    if page < 1:
        raise InvalidInput("page", f"must be at least 1, got {page}")
    return page


def parse_per_page(query: Mapping[str, str]) -> int:
    per_page = _parse_int(query, "per_page")
    if per_page is None:
        return DEFAULT_PER_PAGE
    if per_page < 1:
        raise InvalidInput("per_page", f"must be between 1 and {MAX_PER_PAGE}, got {per_page}")
    return min(per_page, MAX_PER_PAGE)


def parse_sort(query: Mapping[str, str], allowed: Collection[str]) -> tuple[SortKey, ...]:
    """The `sort` parameters in order; each is `field`, `field:asc` or `field:desc`."""
    keys = []
    for raw in _getall(query, "sort"):
        field, colon, direction = raw.strip().partition(":")
        if field not in allowed:
            expected = ", ".join(sorted(allowed))
            raise InvalidInput("sort", f"cannot sort by {field!r}; allowed fields: {expected}")
        if colon and direction not in ("asc", "desc"):
            raise InvalidInput("sort", f"sort direction must be 'asc' or 'desc', got {raw!r}")
        keys.append(SortKey(field, descending=direction == "desc"))
    return tuple(keys)


def parse_list_params(
    query: Mapping[str, str], allowed_sort: Collection[str] = frozenset({"id"})
) -> ListParams:
    return ListParams(
        page=parse_page(query),
        per_page=parse_per_page(query),
        sort=parse_sort(query, allowed_sort),
    )


# --------------------------------------------------------------------------- sorting, slicing


def sort_items(
    items: Sequence[M],
    keys: Sequence[SortKey],
    default: SortKey | None = SortKey("id"),
) -> list[M]:
    """Items sorted by `keys` (first key primary), then by `default` as a tiebreaker.

    Missing fields and nulls sort after all values ascending and before them descending (as
    in PostgreSQL). The sort is stable.
    """
    all_keys = list(keys)
    if default is not None and all(k.field != default.field for k in all_keys):
        all_keys.append(default)
    result = list(items)
    for key in reversed(all_keys):
        present = [item for item in result if item.get(key.field) is not None]
        missing = [item for item in result if item.get(key.field) is None]
        present.sort(key=itemgetter(key.field), reverse=key.descending)
        result = missing + present if key.descending else present + missing
    return result


def paginate(items: Sequence[T], page: int, per_page: int) -> Page[T]:
    pagination = Pagination.compute(page, per_page, len(items))
    start = (page - 1) * per_page
    return Page(list(items[start : start + per_page]), pagination)


def link_header(base_url: str, pagination: Pagination) -> str:
    """The RFC 5988 `Link` header value for one page of a list.

    `base_url` is the request URL; its other query parameters (filters, sort) are kept and
    `page`/`per_page` are replaced.
    """
    scheme, netloc, path, query, fragment = urlsplit(base_url)
    kept = [
        (k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in ("page", "per_page")
    ]

    def url(page: int) -> str:
        params = [*kept, ("page", str(page)), ("per_page", str(pagination.per_page))]
        return urlunsplit((scheme, netloc, path, urlencode(params), fragment))

    links = []
    if pagination.previous_page is not None:
        links.append(f'<{url(pagination.previous_page)}>; rel="prev"')
    if pagination.next_page is not None:
        links.append(f'<{url(pagination.next_page)}>; rel="next"')
    links.append(f'<{url(pagination.last_page)}>; rel="last"')
    return ", ".join(links)


def list_page(
    items: Sequence[M],
    query: Mapping[str, str],
    *,
    allowed_sort: Collection[str],
    base_url: str | None = None,
) -> Page[M]:
    """Parse the query, sort (default by id), paginate and build the Link header.

    Raises InvalidInput for a malformed `page`, `per_page` or `sort`.
    """
    params = parse_list_params(query, allowed_sort)
    page = paginate(sort_items(items, params.sort), params.page, params.per_page)
    if base_url is None:
        return page
    return Page(page.items, page.pagination, link_header(base_url, page.pagination))
