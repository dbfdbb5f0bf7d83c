"""Pagination, sorting and the Link header of list endpoints."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from multidict import MultiDict, MultiDictProxy

from scherbelberg.emulator.api.listing import (
    SORT_FIELDS,
    InvalidInput,
    Page,
    Pagination,
    SortKey,
    link_header,
    list_page,
    paginate,
    parse_list_params,
    parse_page,
    parse_per_page,
    parse_sort,
    sort_items,
)

SERVER_SORT = SORT_FIELDS["servers"]


def q(*pairs: tuple[str, str]) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(pairs))


# ---------------------------------------------------------------------------- parsing


def test_defaults() -> None:
    params = parse_list_params(q(), SERVER_SORT)
    assert (params.page, params.per_page, params.sort) == (1, 25, ())


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("7", 7), (" 3 ", 3), ("007", 7)])
def test_page(raw: str, expected: int) -> None:
    assert parse_page(q(("page", raw))) == expected


@pytest.mark.parametrize("raw", ["0", "-1"])
def test_page_below_one(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_page(q(("page", raw)))
    assert info.value.field == "page"


@pytest.mark.parametrize("raw", ["", "x", "1.5", "1e3", "+2", "1_0", "٣", "2 3"])
def test_page_not_an_integer(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_page(q(("page", raw)))
    assert info.value.field == "page"
    assert "integer" in info.value.message


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("25", 25), ("50", 50), ("51", 50)])
def test_per_page(raw: str, expected: int) -> None:
    assert parse_per_page(q(("per_page", raw))) == expected


def test_per_page_clamps_huge_values() -> None:
    assert parse_per_page(q(("per_page", "1000000000000"))) == 50


@pytest.mark.parametrize("raw", ["0", "-5", "abc", ""])
def test_per_page_invalid(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_per_page(q(("per_page", raw)))
    assert info.value.field == "per_page"


def test_plain_mapping_is_accepted() -> None:
    params = parse_list_params({"page": "2", "per_page": "10", "sort": "name:desc"}, SERVER_SORT)
    assert (params.page, params.per_page) == (2, 10)
    assert params.sort == (SortKey("name", descending=True),)


def test_repeated_sort() -> None:
    sort = parse_sort(
        q(("sort", "status"), ("sort", "id:desc"), ("sort", "started:asc")),
        SORT_FIELDS["actions"],
    )
    assert sort == (
        SortKey("status"),
        SortKey("id", descending=True),
        SortKey("started"),
    )
    assert [str(k) for k in sort] == ["status:asc", "id:desc", "started:asc"]


@pytest.mark.parametrize(
    "raw", ["status", "name:sideways", "id:", "id:ASC", "", ":asc", "id:asc:x"]
)
def test_invalid_sort(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_sort(q(("sort", raw)), SERVER_SORT)
    assert info.value.field == "sort"
    assert str(info.value).startswith("sort: ")


def test_sort_fields_follow_the_spec() -> None:
    assert SORT_FIELDS["servers"] == {"id", "name", "created"}
    assert SORT_FIELDS["ssh_keys"] == {"id", "name"}
    assert SORT_FIELDS["primary_ips"] == {"id", "created"}
    assert SORT_FIELDS["actions"] == {"id", "command", "status", "started", "finished"}


# ---------------------------------------------------------------------------- sorting

ITEMS: list[dict[str, Any]] = [
    {"id": 3, "name": "b", "created": "2026-01-03T00:00:00+00:00", "finished": None},
    {"id": 1, "name": "c", "created": "2026-01-01T00:00:00+00:00", "finished": "2026-01-05"},
    {"id": 2, "name": "a", "created": "2026-01-03T00:00:00+00:00", "finished": "2026-01-04"},
    {"id": 4, "name": "a", "created": "2026-01-02T00:00:00+00:00"},
]


def ids(items: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for item in items]


def test_default_sort_is_id() -> None:
    assert ids(sort_items(ITEMS, ())) == [1, 2, 3, 4]
    assert ids(sort_items(ITEMS, (), default=None)) == [3, 1, 2, 4]


def test_sort_by_field_with_id_tiebreak() -> None:
    assert ids(sort_items(ITEMS, [SortKey("name")])) == [2, 4, 3, 1]
    assert ids(sort_items(ITEMS, [SortKey("name", descending=True)])) == [1, 3, 2, 4]
    assert ids(sort_items(ITEMS, [SortKey("id", descending=True)])) == [4, 3, 2, 1]


def test_multi_key_sort() -> None:
    keys = [SortKey("created", descending=True), SortKey("name")]
    assert ids(sort_items(ITEMS, keys)) == [2, 3, 4, 1]
    keys = [SortKey("name"), SortKey("created", descending=True)]
    assert ids(sort_items(ITEMS, keys)) == [2, 4, 3, 1]


def test_nulls_last_ascending_first_descending() -> None:
    assert ids(sort_items(ITEMS, [SortKey("finished")])) == [2, 1, 3, 4]
    assert ids(sort_items(ITEMS, [SortKey("finished", descending=True)])) == [3, 4, 1, 2]


def test_sort_does_not_touch_input() -> None:
    before = [dict(item) for item in ITEMS]
    sort_items(ITEMS, [SortKey("name")])
    assert before == ITEMS


# ---------------------------------------------------------------------------- pagination

PAGINATION_KEYS = {"page", "per_page", "previous_page", "next_page", "last_page", "total_entries"}


def test_empty_list() -> None:
    page: Page[int] = paginate([], 1, 25)
    assert page.items == []
    assert page.meta == {
        "pagination": {
            "page": 1,
            "per_page": 25,
            "previous_page": None,
            "next_page": None,
            "last_page": 1,
            "total_entries": 0,
        }
    }


def test_first_middle_last_page() -> None:
    items = list(range(1, 8))  # 7 items, 3 per page: [1,2,3] [4,5,6] [7]
    first, middle, last = (paginate(items, n, 3) for n in (1, 2, 3))
    assert (first.items, middle.items, last.items) == ([1, 2, 3], [4, 5, 6], [7])
    assert (first.pagination.previous_page, first.pagination.next_page) == (None, 2)
    assert (middle.pagination.previous_page, middle.pagination.next_page) == (1, 3)
    assert (last.pagination.previous_page, last.pagination.next_page) == (2, None)
    for page in (first, middle, last):
        assert page.pagination.last_page == 3 and page.pagination.total_entries == 7
        assert set(page.meta["pagination"]) == PAGINATION_KEYS


def test_exact_multiple_of_per_page() -> None:
    page = paginate(list(range(50)), 2, 25)
    assert page.items == list(range(25, 50))
    assert page.pagination.last_page == 2 and page.pagination.next_page is None


def test_page_beyond_end() -> None:
    page = paginate([1, 2, 3], 5, 2)
    assert page.items == []
    assert page.pagination == Pagination(
        page=5, per_page=2, previous_page=4, next_page=None, last_page=2, total_entries=3
    )


def test_meta_is_accepted_by_hcloud_python() -> None:
    import hcloud  # noqa: F401
    from hcloud.core import Meta

    meta = Meta.parse_meta({"meta": paginate(list(range(60)), 2, 25).meta})
    assert meta.pagination is not None
    assert (meta.pagination.page, meta.pagination.next_page, meta.pagination.last_page) == (
        2,
        3,
        3,
    )


# ---------------------------------------------------------------------------- Link header


def parse_link(value: str) -> dict[str, dict[str, list[str]]]:
    links = {}
    for part in value.split(", "):
        url, rel = part.split("; ")
        assert url.startswith("<") and url.endswith(">")
        assert rel.startswith('rel="') and rel.endswith('"')
        split = urlsplit(url[1:-1])
        assert (split.scheme, split.netloc, split.path) == ("http", "127.0.0.1:8766", "/v1/servers")
        links[rel[5:-1]] = parse_qs(split.query, keep_blank_values=True)
    return links


BASE = "http://127.0.0.1:8766/v1/servers"


def test_link_header_middle_page_keeps_filters() -> None:
    url = f"{BASE}?label_selector=role%3Dworker&sort=name&sort=id%3Adesc&page=2&per_page=2"
    links = parse_link(link_header(url, Pagination.compute(2, 2, 5)))
    assert list(links) == ["prev", "next", "last"]
    assert links["prev"]["page"] == ["1"] and links["next"]["page"] == ["3"]
    assert links["last"]["page"] == ["3"]
    for query in links.values():
        assert query["per_page"] == ["2"]
        assert query["label_selector"] == ["role=worker"]
        assert query["sort"] == ["name", "id:desc"]


def test_link_header_single_page_has_only_last() -> None:
    value = link_header(BASE, Pagination.compute(1, 25, 0))
    assert value == f'<{BASE}?page=1&per_page=25>; rel="last"'


def test_link_header_last_page() -> None:
    links = parse_link(link_header(BASE + "?page=3", Pagination.compute(3, 25, 60)))
    assert list(links) == ["prev", "last"]
    assert links["prev"]["page"] == ["2"] and links["last"]["page"] == ["3"]


# ---------------------------------------------------------------------------- all together


def test_list_page() -> None:
    items = [{"id": i, "name": f"s{i:02d}"} for i in range(30, 0, -1)]
    page = list_page(
        items,
        q(("page", "2"), ("per_page", "10"), ("sort", "name:desc")),
        allowed_sort=SERVER_SORT,
        base_url=f"{BASE}?page=2&per_page=10&sort=name%3Adesc",
    )
    assert ids(page.items) == list(range(20, 10, -1))
    assert page.meta["pagination"] == {
        "page": 2,
        "per_page": 10,
        "previous_page": 1,
        "next_page": 3,
        "last_page": 3,
        "total_entries": 30,
    }
    assert page.link is not None and 'rel="next"' in page.link and "sort=name%3Adesc" in page.link


def test_list_page_defaults_and_errors() -> None:
    items = [{"id": i} for i in (5, 3, 9)]
    page = list_page(items, q(), allowed_sort=SERVER_SORT)
    assert ids(page.items) == [3, 5, 9] and page.link is None
    with pytest.raises(InvalidInput):
        list_page(items, q(("sort", "status")), allowed_sort=SERVER_SORT)
    with pytest.raises(InvalidInput):
        list_page(items, q(("per_page", "0")), allowed_sort=SERVER_SORT)
