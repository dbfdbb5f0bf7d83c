"""`help(HetznerCluster)` is the argument reference docs/cluster.md points to: it must name
every argument the constructor takes, and nothing it does not take."""

from __future__ import annotations

import inspect
import re

from scherbelberg import HetznerCluster


def documented_parameters() -> set[str]:
    doc = inspect.getdoc(HetznerCluster) or ""
    section = doc.split("Parameters\n----------\n", 1)[1].split("Raises\n------", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line and not line.startswith(" "):  # a numpydoc parameter line: "a, b"
            names.update(n.strip().lstrip("*") for n in line.split(","))
    return names


def test_every_argument_is_described() -> None:
    taken = set(HetznerCluster.argument_names()) | {"n_workers", "kwargs"}
    assert documented_parameters() == taken


def test_every_description_says_something() -> None:
    doc = inspect.getdoc(HetznerCluster) or ""
    section = doc.split("Parameters\n----------\n", 1)[1].split("Raises\n------", 1)[0]
    entries = re.split(r"\n(?=\S)", section.strip())
    for entry in entries:
        head, _, body = entry.partition("\n")
        assert len(body.split()) >= 4, f"{head}: no real description"
