"""Label validation and label selectors."""

from __future__ import annotations

import pytest

from scherbelberg.emulator.model.label_selectors import (
    Requirement,
    Selector,
    is_valid_key,
    is_valid_value,
    parse_selector,
    validate_labels,
)

# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "role",
        "dask-role",
        "a_b.c-d",
        "A1",
        "x" * 63,
        "example.com/role",
        "scherbelberg/cluster",
        "sub.example-1.com/x",
        "hetzner.cloud.example.com/x",
    ],
)
def test_valid_keys(key: str) -> None:
    assert is_valid_key(key)
    assert validate_labels({key: "v"}) == []


@pytest.mark.parametrize(
    "key",
    [
        "",
        "-a",
        "a-",
        ".a",
        "a_",
        "x" * 64,
        "a b",
        "a=b",
        "ä",
        "/a",
        "example.com/",
        "Example.com/a",
        "-example.com/a",
        "example..com/a",
        "example_com/a",
        "a/b/c",
        f"{'a' * 254}/x",
        "hetzner.cloud/foo",
    ],
)
def test_invalid_keys(key: str) -> None:
    assert not is_valid_key(key)
    errors = validate_labels({key: "v"})
    assert len(errors) == 1
    if key:
        assert repr(key) in errors[0]


def test_reserved_prefix_message() -> None:
    (error,) = validate_labels({"hetzner.cloud/x": "1"})
    assert "reserved" in error


@pytest.mark.parametrize("value", ["", "a", "v1.2_3-x", "x" * 63, "Z"])
def test_valid_values(value: str) -> None:
    assert is_valid_value(value)
    assert validate_labels({"k": value}) == []


@pytest.mark.parametrize("value", ["-a", "a.", "x" * 64, "a b", "a/b", "ü", " a"])
def test_invalid_values(value: str) -> None:
    assert not is_valid_value(value)
    assert len(validate_labels({"k": value})) == 1


def test_validate_labels_reports_every_problem_and_odd_input() -> None:
    errors = validate_labels({"-bad": "ok", "good": "-bad", "fine": "x", "both-": "-"})
    assert len(errors) == 4
    assert validate_labels({}) == []
    assert validate_labels(["k"]) == ["labels must be an object mapping keys to string values"]
    assert validate_labels(None)
    assert validate_labels({"k": 1}) == ["label value of 'k' must be a string"]
    assert validate_labels({1: "v"}) == ["label key 1 must be a string"]


# ---------------------------------------------------------------------------- selectors

LABELS = {"env": "prod", "role": "worker", "tier": "", "example.com/team": "dask"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env=prod", True),
        ("env==prod", True),
        ("env=dev", False),
        ("env!=dev", True),
        ("env!=prod", False),
        ("missing!=x", True),  # != matches a missing label (Kubernetes semantics)
        ("env", True),
        ("missing", False),
        ("!missing", True),
        ("!env", False),
        ("tier", True),  # an empty value still counts as present
        ("tier=", True),
        ("!tier", False),
        ("env=", False),
        ("env in (prod,dev)", True),
        ("env in (dev,test)", False),
        ("missing in (a,b)", False),
        ("env notin (dev,test)", True),
        ("env notin (prod)", False),
        ("missing notin (a)", True),  # notin matches a missing label
        ("tier in (,x)", True),  # an empty value inside a list
        ("example.com/team=dask", True),
        ("example.com/team in (dask)", True),
        ("env=prod,role=worker", True),
        ("env=prod,role=scheduler", False),
        ("env in (prod,dev),role notin (scheduler),!gpu,tier", True),
        ("env in (prod,dev),role in (scheduler,client)", False),
        ("  env  =  prod  ,  role in ( worker , x )  ", True),
        ("env in(prod)", True),
        ("env notin(dev)", True),
        ("!  missing", True),
        ("in=x", False),  # `in` is a fine key name
        ("notin", False),
        ("", True),  # the empty selector matches everything
        ("   ", True),
    ],
)
def test_selector_matching(selector: str, expected: bool) -> None:
    assert parse_selector(selector).matches(LABELS) is expected


def test_selector_on_no_labels() -> None:
    assert parse_selector("!a,b!=c,d notin (e)").matches({})
    assert not parse_selector("a").matches({})


def test_parsed_structure() -> None:
    selector = parse_selector("a=1, b != 2, c in (x, y), d notin (z), e, !f, g==3")
    assert selector.requirements == (
        Requirement("a", "=", frozenset({"1"})),
        Requirement("b", "!=", frozenset({"2"})),
        Requirement("c", "in", frozenset({"x", "y"})),
        Requirement("d", "notin", frozenset({"z"})),
        Requirement("e", "exists"),
        Requirement("f", "!"),
        Requirement("g", "=", frozenset({"3"})),
    )
    assert str(selector) == "a=1,b!=2,c in (x,y),d notin (z),e,!f,g=3"
    assert parse_selector(str(selector)) == selector
    assert parse_selector("") == Selector()


@pytest.mark.parametrize(
    "selector",
    [
        "a=b=c",
        "a===b",
        "a=!b",
        "!a=b",
        "!!a",
        "!",
        "=b",
        "a,,b",
        "a,",
        ",a",
        "a in (x",
        "a in x)",
        "a in ((x))",
        "a in ()",
        "a in ( )",
        "a notin ()",
        "a in (x y)",
        "a in (x,y",
        "a b",
        "a in",
        "a inn (x)",
        "ain(x)",
        "a (x)",
        "(a)",
        "-a=b",
        "a=-b",
        "a=b c",
        "a=" + "x" * 64,
        "a in (ok,-bad)",
        "a=b)",
    ],
)
def test_invalid_selectors(selector: str) -> None:
    with pytest.raises(ValueError, match="invalid label selector"):
        parse_selector(selector)


def test_error_messages_name_the_problem() -> None:
    with pytest.raises(ValueError, match="needs at least one value"):
        parse_selector("a in ()")
    with pytest.raises(ValueError, match="empty requirement"):
        parse_selector("a,,b")
    with pytest.raises(ValueError, match="missing '\\)'"):
        parse_selector("a in (b")
    with pytest.raises(ValueError, match="prefix 'Bad' must be a DNS subdomain"):
        parse_selector("Bad/x")


def test_selectors_may_name_reserved_keys() -> None:
    # only setting hetzner.cloud/ labels is forbidden, not selecting on them
    assert parse_selector("hetzner.cloud/managed=yes").matches({"hetzner.cloud/managed": "yes"})
