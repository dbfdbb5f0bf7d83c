"""Client, scheduler and workers must run the same Python and packages, or (de)serialisation
breaks in confusing ways. Compare what each side reports and name what differs."""

from __future__ import annotations

import importlib.metadata
import re
import sys
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import VersionMismatch

# distributed's own `versions` handler reports these; the node environments pin them
CHECKED = ("dask", "distributed", "cloudpickle", "msgpack", "toolz", "numpy", "pandas", "lz4")


def client_versions() -> dict[str, str | None]:
    result: dict[str, str | None] = {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    }
    for name in CHECKED:
        try:
            result[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            result[name] = None
    return result


def _remote_packages(info: Mapping[str, Any]) -> dict[str, str | None]:
    """Flatten distributed's `get_versions()` shape: {"host": {...}, "packages": {...}}."""
    packages = dict(info.get("packages", {}))
    python = packages.get("python") or info.get("host", {}).get("python")
    if python:
        packages["python"] = str(python).split()[0]
    return packages


def mismatches(
    client: Mapping[str, str | None], remote: Mapping[str, Any], names: Iterable[str] | None = None
) -> list[str]:
    """`name client=X node=Y` for each package (and Python major.minor) that differs."""
    packages = _remote_packages(remote)
    problems = []
    client_py = ".".join(str(client.get("python", "")).split(".")[:2])
    node_py = ".".join(str(packages.get("python", "")).split(".")[:2])
    if node_py and client_py != node_py:
        problems.append(f"python client={client_py} node={node_py}")
    for name in names or CHECKED:
        mine, theirs = client.get(name), packages.get(name)
        if mine is None or theirs is None:
            continue  # not installed on one side: distributed does not need it
        if str(mine) != str(theirs):
            problems.append(f"{name} client={mine} node={theirs}")
    return problems


def check(node: str, remote: Mapping[str, Any]) -> None:
    problems = mismatches(client_versions(), remote)
    if problems:
        raise VersionMismatch(f"{node} runs other versions than this client: {'; '.join(problems)}")


def harmless_mismatch_pattern(major: int, minor: int) -> str:
    """A regex for distributed's VersionMismatchWarning when every row of its table is harmless:
    Python, if every side runs `major.minor` (client 3.11.7, Debian nodes 3.11.2), and packages
    the client does not have while scheduler and workers agree (a fresh venv without numpy;
    the nodes' dashboard brings it): `mismatches` above lets both pass too."""
    border = r"\+[-+]+\+"
    version = re.escape(f"{major}.{minor}.") + r"\d+\.\w+\.\d+"
    cell = rf"(?:[ {{}}',]|{version})*"
    python_row = rf"\| python +\|(?:{cell}\|)+\n"
    absent_on_client_row = r"\| [A-Za-z0-9_.-]+ +\| None +\| ([^|\s]+) +\| \1 +\|\n"
    return (
        rf"Mismatched versions found\s*\n{border}\n\| Package[^\n]*\n{border}\n"
        rf"(?:{python_row}|{absent_on_client_row})+{border}\s*\Z"
    )


def ignore_harmless_version_warnings() -> None:
    """Silence distributed's warning table when nothing in it matters (see the pattern).

    `check` above raises on everything that does (major.minor, packages on both sides); any
    other mismatch still warns.
    """
    # category Warning (VersionMismatchWarning's base), so that `import scherbelberg` can
    # install it without importing distributed; the message pattern is specific enough
    pattern = harmless_mismatch_pattern(sys.version_info.major, sys.version_info.minor)
    warnings.filterwarnings("ignore", message=pattern, category=Warning)
