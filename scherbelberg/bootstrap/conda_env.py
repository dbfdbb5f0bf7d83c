"""The client's conda environment, read from its `conda-meta/` (no conda needed), as the list of
exact packages every node installs without a solve, plus the pip-installed extras.

Why: "equivalent environments" means the same packages. A spec solved again on the node
(`dask=2025.1 pandas=2.2 ...` against conda-forge) gets other builds, other dependencies, or no
solution when the channel lags PyPI. So, as Coiled's package sync does for conda, the node gets
the client's explicit list (what `conda list --explicit --md5` prints: the URL of every package
and its md5) and the pip-installed distributions no conda package owns.

A client on another platform (a Mac, an x86 client for arm nodes) names packages of its own
subdir. Each is mapped to the node's subdir by name, version and build in its channel's
repodata (`noarch` packages stay as they are); a build differing only in its variant hash
(`py311h1234567_0`, the hash covers the platform's variant) counts as the same build. What
cannot be matched is named in one `ConfigError` before any server is made.

The facts about conda-meta and the explicit list: conda's `conda/core/prefix_data.py` (one JSON
per package: name, version, build, build_number, subdir, url, md5, sha256, channel, fn, files),
`conda/cli/main_list.py` (`@EXPLICIT`, then `url#md5` lines), and py-rattler's PrefixRecord,
which writes the same fields.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

# Hetzner's architectures (catalog `architecture`) as conda subdirs
NODE_SUBDIRS = {"x86": "linux-64", "arm": "linux-aarch64"}
EXPLICIT_HEADER = "@EXPLICIT"
_HASH = re.compile(r"h[0-9a-f]{7,}")
_METADATA_DIR = re.compile(r"^.*?[^/]+\.(dist|egg)-info(?=/|$)")

Repodata = Callable[[str, str], dict[str, Any]]  # (channel URL, subdir) -> repodata.json


@dataclass(frozen=True)
class CondaPackage:
    """One installed conda package: what a line of `conda list --explicit --md5` names."""

    name: str
    version: str
    build: str
    subdir: str
    url: str
    md5: str
    sha256: str | None = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def channel(self) -> str:
        """The channel's URL: the package URL without `/<subdir>/<file>`."""
        return self.url.rsplit("/", 2)[0]

    @property
    def explicit(self) -> str:
        """The explicit-list line: `url#md5`."""
        return f"{self.url}#{self.md5}"

    def describe(self) -> str:
        return f"{self.name} {self.version} ({self.build}, {self.subdir})"

    @classmethod
    def from_explicit(cls, line: str) -> CondaPackage:
        """The package an explicit-list line (`<channel>/<subdir>/<name>-<version>-<build>
        .conda#<md5>`) names: conda file names are exactly that."""
        url, _, md5 = line.strip().partition("#")
        parts = url.rsplit("/", 2)
        stem = parts[-1].removesuffix(".conda").removesuffix(".tar.bz2")
        fields = stem.rsplit("-", 2)
        if len(parts) != 3 or len(fields) != 3 or not md5 or "://" not in url:
            raise ValueError(f"not an explicit conda package line: {line!r}")
        name, version, build = fields
        return cls(name, version, build, subdir=parts[1], url=url, md5=md5)


@dataclass(frozen=True)
class CondaEnv:
    """A conda environment as the nodes reproduce it."""

    prefix: str
    packages: tuple[CondaPackage, ...]
    pip_extras: tuple[str, ...]  # "name==version" of pip-installed distributions
    local: tuple[str, ...]  # pip-installed from a local path or editable: not reproducible

    @property
    def subdir(self) -> str:
        """The client's platform: the subdir of its non-noarch packages."""
        found = {p.subdir for p in self.packages} - {"noarch"}
        return found.pop() if len(found) == 1 else "noarch"

    def explicit(self) -> str:
        """The environment as `conda list --explicit --md5` prints it."""
        return "\n".join([EXPLICIT_HEADER, *(p.explicit for p in self.packages)]) + "\n"


def in_conda(prefix: str | Path | None = None) -> bool:
    """Whether `prefix` (default: this Python's) is a conda environment."""
    return (Path(prefix or sys.prefix) / "conda-meta").is_dir()


def read_packages(prefix: str | Path) -> tuple[tuple[CondaPackage, ...], set[str]]:
    """The packages `prefix/conda-meta/*.json` records, sorted by name, and the files they
    own (paths relative to the prefix)."""
    packages: list[CondaPackage] = []
    owned: set[str] = set()
    for path in sorted((Path(prefix) / "conda-meta").glob("*.json")):
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"unreadable conda package record {path}: {exc}") from None
        url = meta.get("url") or ""
        if not url or not meta.get("md5"):
            raise ConfigError(f"conda package record {path} has no url or md5")
        packages.append(
            CondaPackage(
                name=meta["name"],
                version=str(meta["version"]),
                build=meta["build"],
                subdir=meta.get("subdir") or url.rsplit("/", 2)[-2],
                url=url,
                md5=meta["md5"],
                sha256=meta.get("sha256"),
            )
        )
        owned.update(meta.get("files") or ())
    packages.sort(key=lambda p: p.name)
    return tuple(packages), owned


def _local_install(dist: importlib.metadata.Distribution) -> bool:
    """Installed from a directory or a local file (PEP 610 direct_url.json): no index has it."""
    text = dist.read_text("direct_url.json")
    if not text:
        return False
    try:
        direct = json.loads(text)
    except ValueError:
        return False
    return "dir_info" in direct or str(direct.get("url", "")).startswith("file:")


def pip_extras(prefix: str | Path, owned: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Distributions in `prefix`'s site-packages that no conda package owns: ("name==version"
    from an index, names installed from a local path)."""
    root = Path(prefix).resolve()
    owned_dirs = {m.group(0) for f in owned if (m := _METADATA_DIR.match(f))}
    extras, local = set(), set()
    site = [str(p) for p in root.glob("lib/python3*/site-packages")]
    for dist in importlib.metadata.distributions(path=site):
        where = getattr(dist, "_path", None)
        if where is None:
            continue
        relative = Path(where).resolve().relative_to(root).as_posix()
        if relative in owned_dirs:
            continue
        name = dist.metadata["Name"]
        if _local_install(dist):
            local.add(name)
        else:
            extras.add(f"{name}=={dist.version}")
    return tuple(sorted(extras, key=str.lower)), tuple(sorted(local, key=str.lower))


def read_env(prefix: str | Path | None = None) -> CondaEnv:
    """The conda environment at `prefix` (default: this Python's)."""
    where = Path(prefix or sys.prefix)
    packages, owned = read_packages(where)
    extras, local = pip_extras(where, owned)
    return CondaEnv(str(where), packages, extras, local)


def _variant(build: str) -> str:
    """A build string without its variant hash: `py311h1234567_0` -> `py311_0`."""
    return _HASH.sub("", build)


def _records(repodata: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    for key in ("packages", "packages.conda"):
        yield from (repodata.get(key) or {}).items()


def _match(package: CondaPackage, repodata: dict[str, Any], subdir: str) -> str | None:
    """The explicit line of `package`'s twin in `subdir`'s repodata, or None."""
    same = [
        (fn, r)
        for fn, r in _records(repodata)
        if r.get("name") == package.name and str(r.get("version")) == package.version
    ]
    exact = [(fn, r) for fn, r in same if r.get("build") == package.build]
    similar = [(fn, r) for fn, r in same if _variant(r.get("build", "")) == _variant(package.build)]
    for fn, record in sorted(exact) or sorted(similar):
        if record.get("md5"):
            return f"{package.channel}/{subdir}/{fn}#{record['md5']}"
    return None


def fetch_repodata(channel: str, subdir: str) -> dict[str, Any]:
    """`channel/subdir/repodata.json`; a channel without that subdir has no packages for it."""
    url = f"{channel.rstrip('/')}/{subdir}/repodata.json"
    try:
        with urllib.request.urlopen(url, timeout=120) as resp:
            data = json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return {}
        raise ConfigError(f"could not read the conda channel's {url}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"could not read the conda channel's {url}: {exc}") from None
    return data if isinstance(data, dict) else {}


def for_subdir(
    packages: Iterable[CondaPackage], subdir: str, repodata: Repodata = fetch_repodata
) -> tuple[tuple[str, ...], list[CondaPackage]]:
    """The explicit lines a node of `subdir` installs, and the packages without a twin there."""
    lines, missing = [], []
    cache: dict[str, dict[str, Any]] = {}
    for package in packages:
        if package.subdir in ("noarch", subdir):
            lines.append(package.explicit)
            continue
        if package.channel not in cache:
            cache[package.channel] = repodata(package.channel, subdir)
        line = _match(package, cache[package.channel], subdir)
        if line is None:
            missing.append(package)
        else:
            lines.append(line)
    return tuple(lines), missing


def for_nodes(
    lists: Iterable[tuple[str, tuple[str, ...]]],
    architectures: Iterable[str],
    repodata: Repodata = fetch_repodata,
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The client's explicit list (`lists`: its one (subdir, lines) pair) mapped to each node
    subdir (from Hetzner architectures). Raises one ConfigError naming every package some
    node's subdir has no build of."""
    (client_subdir, client_lines), *_ = lists
    packages = [CondaPackage.from_explicit(line) for line in client_lines]
    result, problems = [], []
    for architecture in sorted(set(architectures)):
        subdir = NODE_SUBDIRS[architecture]
        lines, missing = for_subdir(packages, subdir, repodata)
        if missing:
            names = ", ".join(p.describe() for p in missing)
            problems.append(f"{subdir} ({architecture} servers): {names}")
        result.append((subdir, lines))
    if problems:
        raise ConfigError(
            f"the client's conda environment ({client_subdir}) cannot be reproduced on the "
            "nodes: its channels have no build for " + "; ".join(problems)
        )
    return tuple(result)
