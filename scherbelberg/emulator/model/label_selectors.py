"""Hetzner labels and label selectors, with Kubernetes' syntax and semantics.

Labels: keys are `[prefix/]name`. The name is 1-63 characters, alphanumeric at both ends with
`-`, `_` and `.` allowed inside; the optional prefix is a DNS subdomain (at most 253 characters,
dot-separated labels of lowercase alphanumerics and `-`); the prefix `hetzner.cloud/` is
reserved. Values are empty or follow the same rules as names.

Selectors (the `label_selector` query parameter and firewall `apply_to` selectors) are
comma-separated requirements, all of which must hold:

    k=v  k==v   label k exists and equals v
    k!=v        label k is missing or differs from v
    k           label k exists
    !k          label k is missing
    k in (a,b)  label k exists and is a or b
    k notin (a,b)  label k is missing or is neither a nor b

Commas inside parentheses belong to the value list; whitespace around tokens is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from scherbelberg.errors import EmulatorInputError

__all__ = [
    "RESERVED_PREFIX",
    "Operator",
    "Requirement",
    "Selector",
    "is_valid_key",
    "is_valid_value",
    "parse_selector",
    "validate_labels",
]

RESERVED_PREFIX = "hetzner.cloud"

_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
_DNS_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MAX_PREFIX = 253


def _key_error(key: str, *, allow_reserved: bool = False) -> str | None:
    """Why `key` is not a valid label key, or None if it is."""
    if not key:
        return "label key must not be empty"
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return f"label key {key!r}: prefix must not be empty"
        if (
            len(prefix) > _MAX_PREFIX
            or "/" in prefix
            or not all(_DNS_LABEL_RE.fullmatch(part) for part in prefix.split("."))
        ):
            return f"label key {key!r}: prefix {prefix!r} must be a DNS subdomain"
        if prefix == RESERVED_PREFIX and not allow_reserved:
            return f"label key {key!r}: prefix {RESERVED_PREFIX + '/'!r} is reserved"
    if not name:
        return f"label key {key!r}: name must not be empty"
    if len(name) > 63:
        return f"label key {key!r}: name must be at most 63 characters"
    if not _NAME_RE.fullmatch(name):
        return (
            f"label key {key!r}: name must consist of alphanumeric characters, '-', '_' or '.',"
            " and must start and end with an alphanumeric character"
        )
    return None


def _value_error(key: str, value: str) -> str | None:
    """Why `value` is not a valid label value, or None if it is."""
    if value == "":
        return None
    if len(value) > 63:
        return f"label value of {key!r} must be at most 63 characters"
    if not _NAME_RE.fullmatch(value):
        return (
            f"label value {value!r} of {key!r} must be empty or consist of alphanumeric"
            " characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )
    return None


def is_valid_key(key: str) -> bool:
    return _key_error(key) is None


def is_valid_value(value: str) -> bool:
    return _value_error("", value) is None


def validate_labels(labels: object) -> list[str]:
    """All problems with a `labels` object from a request body; empty if it is valid.

    Accepts anything JSON can produce, so a non-object or non-string values are reported
    rather than raising.
    """
    if not isinstance(labels, Mapping):
        return ["labels must be an object mapping keys to string values"]
    errors: list[str] = []
    for key, value in labels.items():
        if not isinstance(key, str):
            errors.append(f"label key {key!r} must be a string")
            continue
        key_problem = _key_error(key)
        if key_problem:
            errors.append(key_problem)
        if not isinstance(value, str):
            errors.append(f"label value of {key!r} must be a string")
            continue
        value_problem = _value_error(key, value)
        if value_problem:
            errors.append(value_problem)
    return errors


# --------------------------------------------------------------------------- selectors

Operator = Literal["=", "!=", "in", "notin", "exists", "!"]


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin": a missing label matches, as in Kubernetes
        return not present or labels[self.key] not in self.values

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("=", "!="):
            (value,) = self.values
            return f"{self.key}{self.operator}{value}"
        return f"{self.key} {self.operator} ({','.join(sorted(self.values))})"


@dataclass(frozen=True)
class Selector:
    """A parsed label selector; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(req) for req in self.requirements)


# A key or value token: anything but whitespace, operators, parentheses and commas. What the
# token may really contain is checked afterwards, to give a precise message.
_TOKEN = r"[^\s=!(),]+"
_NOT_EXISTS_RE = re.compile(rf"!\s*(?P<key>{_TOKEN})")
_COMPARE_RE = re.compile(rf"(?P<key>{_TOKEN})\s*(?P<op>==|!=|=)\s*(?P<value>{_TOKEN})?")
_SET_RE = re.compile(rf"(?P<key>{_TOKEN})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)")
_EXISTS_RE = re.compile(rf"(?P<key>{_TOKEN})")
_VALUE_RE = re.compile(rf"(?:{_TOKEN})?")


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses; reject unbalanced or nested parentheses."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(text):
        if char == "(":
            if depth:
                raise EmulatorInputError(f"invalid label selector {text!r}: nested parentheses")
            depth = 1
        elif char == ")":
            if not depth:
                raise EmulatorInputError(f"invalid label selector {text!r}: unbalanced ')'")
            depth = 0
        elif char == "," and not depth:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise EmulatorInputError(f"invalid label selector {text!r}: missing ')'")
    parts.append(text[start:])
    return parts


def _check_key(text: str, key: str) -> str:
    # selecting on Hetzner's own labels is fine, only setting them is not
    problem = _key_error(key, allow_reserved=True)
    if problem:
        raise EmulatorInputError(f"invalid label selector {text!r}: {problem}")
    return key


def _check_value(text: str, key: str, value: str) -> str:
    problem = _value_error(key, value)
    if problem:
        raise EmulatorInputError(f"invalid label selector {text!r}: {problem}")
    return value


def _parse_requirement(text: str, part: str) -> Requirement:
    if m := _NOT_EXISTS_RE.fullmatch(part):
        return Requirement(_check_key(text, m["key"]), "!")
    if m := _SET_RE.fullmatch(part):
        key = _check_key(text, m["key"])
        raw_values = [v.strip() for v in m["values"].split(",")]
        if raw_values == [""]:
            raise EmulatorInputError(
                f"invalid label selector {text!r}: {m['op']!r} needs at least one value"
            )
        values = []
        for value in raw_values:
            if not _VALUE_RE.fullmatch(value):
                raise EmulatorInputError(
                    f"invalid label selector {text!r}: invalid value {value!r}"
                )
            values.append(_check_value(text, key, value))
        op: Operator = "in" if m["op"] == "in" else "notin"
        return Requirement(key, op, frozenset(values))
    if m := _COMPARE_RE.fullmatch(part):
        key = _check_key(text, m["key"])
        value = _check_value(text, key, m["value"] or "")
        return Requirement(key, "!=" if m["op"] == "!=" else "=", frozenset((value,)))
    if m := _EXISTS_RE.fullmatch(part):
        return Requirement(_check_key(text, m["key"]), "exists")
    raise EmulatorInputError(f"invalid label selector {text!r}: cannot parse {part!r}")


def parse_selector(text: str) -> Selector:
    """Parse a label selector; raise ValueError with a readable message if it is invalid.

    An empty (or all-whitespace) selector has no requirements and matches everything.
    """
    if not text.strip():
        return Selector()
    requirements = []
    for part in _split_top_level(text):
        part = part.strip()
        if not part:
            raise EmulatorInputError(f"invalid label selector {text!r}: empty requirement")
        requirements.append(_parse_requirement(text, part))
    return Selector(tuple(requirements))
