"""The Python environment a node runs Dask in, and the POSIX sh that installs and checks it.

Why: Dask only works when the client, the scheduler and the workers run the same versions of
the libraries that (de)serialize tasks and data. So the node's environment is described by the
client's own versions (`client_env_spec`), installed on the node at boot by `install_script`,
and checked after the install: a mismatch fails the bootstrap and names the packages, instead of
surfacing later as an obscure deserialization error.

Three ways to get the environment onto a node:

- `pip` (default): a venv at `prefix` made from the node's `python3.X`, `uv` installed into it
  with pip, then everything installed with `uv pip install`. Where the image lacks
  python3.X-venv (Hetzner's debian-12), apt installs it first. Without a matching `python3.X`
  on the node, `uv` comes from the package index (its wheel) and installs a managed Python:
  python-build-standalone from GitHub, or what `python_downloads_json_url` lists.
- `conda`: the client's own conda environment, package for package: its explicit list (read
  from `conda-meta/`, mapped to the node's platform: `conda_env.py`) installed without a solve
  by py-rattler, then the client's pip-installed extras with uv. py-rattler rather than
  micromamba: it comes from the package index the node already uses for uv (PyPI or its
  mirror), where micromamba comes from micro.mamba.pm / GitHub; and its `install` links an
  exact list of records (no solver involved), as `micromamba create --file explicit.txt` does.
- `preinstalled`: the image already holds the env; only the checks run.
"""

from __future__ import annotations

import importlib.metadata
import posixpath
import re
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

from ..errors import ConfigError
from . import conda_env

# Distributions whose versions must match between the client and the nodes: Dask itself, and
# everything that (de)serializes or compresses what travels between them.
PINNED_DISTRIBUTIONS = (
    "dask",
    "distributed",
    "cloudpickle",
    "msgpack",
    "toolz",
    "tornado",
    "numpy",
    "pandas",
    "pyarrow",
    "lz4",
)

# The conda installer on the nodes (py-rattler, from the package index); pinned: the node-side
# script below uses its API (RepoData.into_repo_data, install)
RATTLER_VERSION = "0.28.0"
PYPI_SIMPLE = "https://pypi.org/simple/"  # where a node gets uv when no index_url is given

_PYTHON_VERSION = re.compile(r"^3\.\d{1,2}$")
_EXACT_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")
_DISTRIBUTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SUBDIR = re.compile(r"^[a-z0-9]+(-[a-z0-9_]+)?$")
_EXPLICIT_LINE = re.compile(r"^https?://[^\s'#]+#[0-9a-f]{32}$")


@dataclass(frozen=True)
class EnvSpec:
    """What a node's Python environment must hold, and how to get it there.

    `pins` are (distribution, exact version) pairs the node must match; `extra_packages` are
    requirement strings installed alongside ("xarray>=2024"). `uv_version` pins the uv that
    the pip method installs on the node (None: the newest). `python_downloads_json_url` is a
    list of managed Pythons in uv's format (UV_PYTHON_DOWNLOADS_JSON_URL) for nodes without the
    client's python3.X; None: uv's own list (python-build-standalone on GitHub).
    `conda_packages` (conda method): per conda subdir (linux-64, ...) the explicit list of
    package URLs with their md5 (`url#md5`) that nodes of that platform install.
    """

    method: Literal["pip", "conda"]
    python: str
    pins: tuple[tuple[str, str], ...]
    extra_packages: tuple[str, ...] = ()
    index_url: str | None = None
    conda_packages: tuple[tuple[str, tuple[str, ...]], ...] = ()
    prefix: str = "/opt/scherbelberg/env"
    preinstalled: bool = False
    uv_version: str | None = None
    python_downloads_json_url: str | None = None

    def __post_init__(self) -> None:
        if self.method not in ("pip", "conda"):
            raise ConfigError(f"unknown install method {self.method!r} (pip or conda)")
        if not _PYTHON_VERSION.match(self.python):
            raise ConfigError(f"python must be a major.minor version like '3.11': {self.python!r}")
        for name, version in self.pins:
            if not _DISTRIBUTION.match(name) or not _EXACT_VERSION.match(version):
                raise ConfigError(f"bad pin {name!r}=={version!r}")
        if not posixpath.isabs(self.prefix) or posixpath.normpath(self.prefix) in ("/", "//"):
            raise ConfigError(f"prefix must be an absolute directory below /: {self.prefix!r}")
        if self.index_url is not None and urlsplit(self.index_url).scheme not in ("http", "https"):
            raise ConfigError(f"index_url must be an http(s) URL: {self.index_url!r}")
        downloads = self.python_downloads_json_url
        if downloads is not None and urlsplit(downloads).scheme not in ("http", "https"):
            raise ConfigError(f"python_downloads_json_url must be an http(s) URL: {downloads!r}")
        if self.uv_version is not None and not _EXACT_VERSION.match(self.uv_version):
            raise ConfigError(f"bad uv version {self.uv_version!r}")
        for requirement in self.extra_packages:
            if not requirement.strip() or requirement.lstrip().startswith("-"):
                raise ConfigError(
                    f"extra_packages holds requirements, not options: {requirement!r}"
                )
        for subdir, lines in self.conda_packages:
            if not _SUBDIR.match(subdir) or not all(_EXPLICIT_LINE.match(x) for x in lines):
                raise ConfigError(f"bad conda package list for {subdir!r}")


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def client_env_spec(
    method: Literal["pip", "conda"] = "pip",
    extra_packages: Iterable[str] = (),
    index_url: str | None = None,
    preinstalled: bool = False,
    python_downloads_json_url: str | None = None,
) -> EnvSpec:
    """The environment the nodes need to work with this client: its Python, its versions;
    with the conda method, its conda environment's explicit list and its pip-installed extras
    (both empty when this Python is not in a conda environment: settings refuse that)."""
    conda_packages: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if method == "conda" and conda_env.in_conda():
        client = conda_env.read_env()
        conda_packages = ((client.subdir, tuple(p.explicit for p in client.packages)),)
        extra_packages = (*client.pip_extras, *extra_packages)
    pins = tuple(
        (name, version)
        for name in PINNED_DISTRIBUTIONS
        if (version := _installed_version(name)) is not None
    )
    return EnvSpec(
        method=method,
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        pins=pins,
        extra_packages=tuple(extra_packages),
        index_url=index_url,
        preinstalled=preinstalled,
        uv_version=_installed_version("uv"),
        python_downloads_json_url=python_downloads_json_url,
        conda_packages=conda_packages,
    )


def for_architecture(env: EnvSpec, architecture: str) -> EnvSpec:
    """`env` with only the conda package list of nodes of `architecture` (x86, arm): each
    node's user_data carries its own (Hetzner's limit is 32 KiB; a list of 150 conda-forge
    packages is about 16 KiB)."""
    if not env.conda_packages:
        return env
    subdir = conda_env.NODE_SUBDIRS.get(architecture)
    return replace(env, conda_packages=tuple(x for x in env.conda_packages if x[0] == subdir))


def dashboard_requirement() -> str:
    """The requirement for Dask's dashboard (bokeh): the client's own bokeh where it satisfies
    distributed's range, else that range. Without it the scheduler's dashboard only says
    "Dask needs bokeh"."""
    try:
        from distributed.versions import BOKEH_REQUIREMENT
    except ImportError:  # older distributed: the range it has asked for since 2023.4
        return "bokeh>=3.1.0"
    client = _installed_version("bokeh")
    if client is not None and BOKEH_REQUIREMENT.specifier.contains(client, prereleases=True):
        return f"bokeh=={client}"
    return str(BOKEH_REQUIREMENT)


def with_dashboard(env: EnvSpec) -> EnvSpec:
    """`env` plus what the dashboard needs, unless the user's extras name bokeh already.

    Only the scheduler serves a dashboard that users reach (workers' pages are on the private
    network), so only its environment and environment images carry bokeh: workers start
    without the extra install."""
    if any(re.match(r"\s*bokeh\b", r, re.IGNORECASE) for r in env.extra_packages):
        return env
    return replace(env, extra_packages=(*env.extra_packages, dashboard_requirement()))


def install_script(env: EnvSpec) -> str:
    """The POSIX sh body of the bootstrap's `environment` step, for `env`.

    Self-contained (its own helpers, no shebang, no `set` of its own: the caller runs it under
    `set -eu`, in a subshell). Any failure prints a line starting with `scherbelberg: error:`
    to stderr and exits non-zero.
    """
    if env.preinstalled:
        body = 'log "preinstalled: only checking the environment at $P"\n'
    elif env.method == "pip":
        body = _pip_install(env)
    else:
        body = _conda_install(env)
    return _PREAMBLE + _variables(env) + body + _verify(env)


# --- shared pieces --------------------------------------------------------------------------

_PREAMBLE = r"""# scherbelberg: install the Dask environment
die() { echo "scherbelberg: error: $*" >&2; exit 1; }
log() { echo "scherbelberg: $(date -u '+%Y-%m-%d %H:%M:%S') $*"; }
fetch() {
  if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 5 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"
  else python3 -c 'import sys, urllib.request as u; u.urlretrieve(*sys.argv[1:])' "$1" "$2"
  fi
}
fresh_prefix() {
  [ ! -e "$P" ] || [ -f "$P/pyvenv.cfg" ] || [ -d "$P/conda-meta" ] \
    || die "$P exists and is not an environment: not replacing it"
  rm -rf "$P"
}
export HOME="${HOME:-/root}" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
"""


def _variables(env: EnvSpec) -> str:
    return f"P={_q(env.prefix)}\nV={_q(env.python)}\n"


def _q(word: str) -> str:
    return shlex.quote(word)


def _words(words: Iterable[str]) -> str:
    """Shell words, quoted where needed; a leading space unless empty (to follow a command)."""
    return "".join(" " + _q(w) for w in words)


def _pip_index_options(env: EnvSpec) -> list[str]:
    """pip refuses plain-http indexes (a local mirror) unless the host is trusted."""
    if env.index_url is None:
        return []
    options = ["--index-url", env.index_url]
    url = urlsplit(env.index_url)
    if url.scheme == "http" and url.hostname:
        options += ["--trusted-host", url.netloc.rpartition("@")[2]]
    return options


def _uv_index_options(env: EnvSpec) -> list[str]:
    return [] if env.index_url is None else ["--index-url", env.index_url]


def _tools_dir(env: EnvSpec) -> str:
    """Where downloaded tools (uv's Pythons, py-rattler) live: next to the env."""
    return posixpath.dirname(posixpath.normpath(env.prefix)) or "/"


# The check after the install: the env's Python is the client's major.minor, each pinned
# distribution has exactly the client's version. argv: python version, then name==version...
_VERIFY_PY = """\
import sys, importlib.metadata as m
want, bad = sys.argv[1], []
have = "%d.%d" % sys.version_info[:2]
if have != want:
    bad.append("python %s (client: %s)" % (have, want))
for pin in sys.argv[2:]:
    name, _, version = pin.partition("==")
    try:
        got = m.version(name)
    except m.PackageNotFoundError:
        got = "not installed"
    if got != version:
        bad.append("%s %s (client: %s)" % (name, got, version))
if bad:
    sys.exit("scherbelberg: error: the environment does not match the client: " + ", ".join(bad))
print("scherbelberg: the environment matches the client: python " + " ".join([have] + sys.argv[2:]))
"""


def _verify(env: EnvSpec) -> str:
    pins = _words(f"{name}=={version}" for name, version in env.pins)
    return (
        "# check: the env's python and every pinned version are the client's\n"
        '[ -x "$P/bin/python" ] || die "no python at $P/bin/python"\n'
        f'"$P/bin/python" -c {_q(_VERIFY_PY)} "$V"{pins}\n'
        '[ -x "$P/bin/dask" ] || die "no dask command at $P/bin/dask"\n'
    )


# --- pip (uv) --------------------------------------------------------------------------------


# uv from a package index (PyPI, or the mirror a node is given), for nodes without a usable
# python3.X: the uv wheel holds the static uv binary. Runs under the image's own python3 (which
# cloud-init needs, so every image has it) with the stdlib only: bare images have no pip. It
# reads the index's PEP 503 page, takes the client's uv version (else the newest that is not
# yanked) as a manylinux wheel for this machine, checks its sha256 and unpacks `uv`.
# argv: index URL, uv version or "", destination file.
_UV_FROM_INDEX_PY = """\
import hashlib, html.parser, io, os, platform, re, sys, time, urllib.parse, urllib.request, zipfile
index, want, dest = sys.argv[1:]
m = platform.machine()
arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(m)
if arch is None:
    sys.exit("scherbelberg: error: no uv wheel for " + m)
def get(url):
    for attempt in range(5):
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                return r.read()
        except OSError as e:
            if attempt == 4:
                sys.exit("scherbelberg: error: could not fetch %s: %s" % (url, e))
            time.sleep(2 ** attempt)
class Links(html.parser.HTMLParser):
    links = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append((a["href"], "data-yanked" in a))
page = index.rstrip("/") + "/uv/"
parser = Links()
parser.feed(get(page).decode())
found = {}
for href, yanked in parser.links:
    url, _, fragment = urllib.parse.urljoin(page, href).partition("#")
    name = urllib.parse.unquote(url.rsplit("/", 1)[-1])
    w = re.fullmatch(r"uv-([0-9.]+)-py3-none-(.+)[.]whl", name)
    sha = re.fullmatch(r"sha256=([0-9a-f]{64})", fragment)
    if w and sha and "manylinux" in w.group(2) and w.group(2).endswith("_" + arch):
        found[w.group(1)] = (url, sha.group(1), yanked, name)
if want:
    version = want
else:
    usable = [v for v, f in found.items() if not f[2]]
    version = max(usable, key=lambda v: [int(p) for p in v.split(".")], default="")
if version not in found:
    sys.exit("scherbelberg: error: no uv %s wheel for %s at %s" % (want or "", arch, page))
url, sha, _, name = found[version]
data = get(url)
if hashlib.sha256(data).hexdigest() != sha:
    sys.exit("scherbelberg: error: %s does not have the sha256 the index names" % url)
with zipfile.ZipFile(io.BytesIO(data)) as z:
    members = [n for n in z.namelist() if n.endswith(".data/scripts/uv")]
    if not members:
        sys.exit("scherbelberg: error: no uv binary in " + name)
    with open(dest, "wb") as f:
        f.write(z.read(members[0]))
os.chmod(dest, 0o755)
print("scherbelberg: uv %s from %s (sha256 checked)" % (version, name))
"""

# apt-get with a deadline, for the bare images' apt branch. At first boot apt-daily and
# unattended-upgrades may hold apt's locks: DPkg::Lock::Timeout makes `install` wait for the
# dpkg lock, but `update` fails at once on the lists lock (apt 2.6: the timeout is not applied
# there), and a mirror can fail a request; so every apt-get is retried until the deadline.
_APT_GET = r"""apt_get() {
  end=$(( $(date +%s) + {deadline} ))
  until apt-get -q -o DPkg::Lock::Timeout=60 -o Acquire::Retries=3 "$@"; do
    if [ "$(date +%s)" -ge "$end" ]; then
      log "apt-get $1 still failing after {deadline} s: giving up"
      return 1
    fi
    log "apt-get $1 failed (apt's lock held by apt-daily or unattended-upgrades?): again in 10 s"
    sleep 10
  done
}
"""
APT_DEADLINE = 600  # seconds; unattended-upgrades at first boot can take minutes


def _pip_install(env: EnvSpec) -> str:
    """venv from the node's python3.X (apt installs python3.X-venv where it is missing), uv
    into it, then uv pip; without a usable python3.X, uv from the package index and a
    uv-managed Python (from `python_downloads_json_url`'s list where given)."""
    uv = "uv" if env.uv_version is None else f"uv=={env.uv_version}"
    requirements = [f"{name}=={version}" for name, version in env.pins] + list(env.extra_packages)
    pip_index = _words(_pip_index_options(env))
    uv_index = _words(_uv_index_options(env))
    python_dir = posixpath.join(_tools_dir(env), "python")
    index = env.index_url or PYPI_SIMPLE
    downloads = ""
    if env.python_downloads_json_url is not None:
        downloads = f"""\
  J={_q(env.python_downloads_json_url)}
  fetch "$J" "$T/python-downloads.json" || die "could not fetch the Python downloads list $J"
  export UV_PYTHON_DOWNLOADS_JSON_URL="$T/python-downloads.json"
  log "uv's Python downloads: $J"
"""
    install = ""
    if requirements:
        install = (
            f'"$P/bin/uv" pip install --python "$P/bin/python"{uv_index}{_words(requirements)}'
            ' \\\n  || die "uv pip install failed (see above)"\n'
        )
    return (
        _APT_GET.replace("{deadline}", str(APT_DEADLINE))
        + f"""\
# pip method: venv + uv
PY=$(command -v "python$V" || true)
if [ -n "$PY" ] && ! "$PY" -c "import venv" >/dev/null 2>&1; then
  log "python$V at $PY does not work"
  PY=
fi
fresh_prefix
if [ -n "$PY" ] && ! "$PY" -m venv "$P"; then
  log "python$V -m venv failed (Debian strips ensurepip): installing python$V-venv with apt"
  export DEBIAN_FRONTEND=noninteractive
  fresh_prefix
  if command -v apt-get >/dev/null 2>&1 && apt_get update \\
    && apt_get -y install "python$V-venv" && "$PY" -m venv "$P"; then
    log "python$V-venv installed with apt"
  else
    log "no venv from python$V"
    rm -rf "$P"
    PY=
  fi
fi
if [ -n "$PY" ]; then
  log "venv from $PY at $P"
  "$P/bin/pip" install{pip_index} {_q(uv)} || die "could not install uv into $P"
  log "uv installed into $P"
else
  log "no usable python$V: uv from the package index, then a uv-managed Python $V"
  T=$(mktemp -d) I={_q(index)}
  python3 -c {_q(_UV_FROM_INDEX_PY)} "$I" {_q(env.uv_version or "")} "$T/uv" \\
    || die "could not get uv from $I"
{downloads}  export UV_PYTHON_INSTALL_DIR={_q(python_dir)} UV_PYTHON_PREFERENCE=only-managed
  "$T/uv" python install "$V" || die "uv python install $V failed"
  log "uv-managed Python $V installed in $UV_PYTHON_INSTALL_DIR"
  "$T/uv" venv --python "$V" "$P" || die "uv venv --python $V $P failed"
  install -m 0755 "$T/uv" "$P/bin/uv"
  rm -rf "$T"
  log "venv from the uv-managed Python $("$P/bin/python" -V 2>&1) at $P"
fi
{install}"""
    )


# --- conda (py-rattler) ----------------------------------------------------------------------

# The node side of the conda method, run by py-rattler's Python: every `url#md5` line of the
# explicit list is looked up by file name in its channel's repodata.json for that subdir (which
# gives rattler the full record: depends, noarch, sha256), the md5 compared with the list's, and
# the records linked into the prefix with `rattler.install`: no solver is involved.
# argv: explicit list file, prefix, package cache directory.
_RATTLER_INSTALL_PY = """\
import asyncio, os, sys, tempfile, time, urllib.request
from rattler import Channel, RepoData, install
listing, prefix, cache = sys.argv[1:]
def get(url, dest):
    for attempt in range(5):
        try:
            urllib.request.urlretrieve(url, dest)
            return
        except OSError as e:
            if attempt == 4:
                sys.exit("scherbelberg: error: could not fetch %s: %s" % (url, e))
            time.sleep(2 ** attempt)
wanted = []
for line in open(listing):
    line = line.strip()
    if line and not line.startswith(("@", "#")):
        url, _, md5 = line.partition("#")
        channel, subdir, name = url.rsplit("/", 2)
        wanted.append((channel, subdir, name, md5))
known, records, bad = {}, [], []
with tempfile.TemporaryDirectory() as tmp:
    for channel, subdir, name, md5 in wanted:
        if (channel, subdir) not in known:
            path = os.path.join(tmp, "%d.json" % len(known))
            get("%s/%s/repodata.json" % (channel, subdir), path)
            found = RepoData.from_path(path).into_repo_data(Channel(channel))
            known[(channel, subdir)] = {r.file_name: r for r in found}
        record = known[(channel, subdir)].get(name)
        if record is None or record.md5 is None or record.md5.hex() != md5:
            bad.append("%s/%s/%s" % (channel, subdir, name))
        else:
            records.append(record)
if bad:
    sys.exit("scherbelberg: error: not in the channel with the client's md5: " + " ".join(bad))
asyncio.run(install(records, target_prefix=prefix, cache_dir=cache, show_progress=False))
print("scherbelberg: %d conda packages installed in %s (no solve)" % (len(records), prefix))
"""


def _conda_install(env: EnvSpec) -> str:
    """The client's explicit list for this node's platform, linked by py-rattler (from the
    package index, into its own venv next to the env), then the pip extras with uv."""
    tools = posixpath.join(_tools_dir(env), "rattler")
    index = env.index_url or PYPI_SIMPLE
    uv_index = _words(_uv_index_options(env))
    lists = "".join(
        f"  {subdir}) printf '%s\\n'{_words(lines)} >\"$T/explicit.txt\" ;;\n"
        for subdir, lines in env.conda_packages
    )
    extras = ""
    if env.extra_packages:
        extras = (
            f'"$T/uv" pip install --python "$P/bin/python"{uv_index}{_words(env.extra_packages)}'
            ' \\\n  || die "uv pip install of the pip-installed extras failed (see above)"\n'
        )
    return f"""\
# conda method: the client's explicit package list, linked by py-rattler without a solve
case $(uname -m) in
  x86_64|amd64) A=linux-64 ;;
  aarch64|arm64) A=linux-aarch64 ;;
  *) die "no conda platform for $(uname -m)" ;;
esac
fresh_prefix
T=$(mktemp -d)
case $A in
{lists}  *) die "the client's conda environment has no package list for $A" ;;
esac
log "conda: $(wc -l <"$T/explicit.txt") packages for $A; py-rattler {RATTLER_VERSION} from {index}"
python3 -c {_q(_UV_FROM_INDEX_PY)} {_q(index)} {_q(env.uv_version or "")} "$T/uv" \\
  || die "could not get uv from {index}"
R={_q(tools)}
rm -rf "$R"
UV_PYTHON_DOWNLOADS=never "$T/uv" venv -q --python "$(command -v python3)" "$R" \\
  || die "uv venv for py-rattler failed"
"$T/uv" pip install -q --python "$R/bin/python"{uv_index} py-rattler=={RATTLER_VERSION} \\
  || die "could not install py-rattler {RATTLER_VERSION}"
"$R/bin/python" -c {_q(_RATTLER_INSTALL_PY)} "$T/explicit.txt" "$P" "$R/pkgs" \\
  || die "py-rattler could not install the client's conda packages (see above)"
{extras}install -m 0755 "$T/uv" "$P/bin/uv"
rm -rf "$T"
"""
