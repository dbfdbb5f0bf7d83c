"""The bootstrap's steps for nodes without the client's Python and for bare images, run for
real on this host: uv fetched from a package index (a PEP 503 page served on loopback, real
wheels-shaped zips), the uv-managed branch of the install script with a stand-in uv, and the
apt retries with a stand-in apt-get."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import platform
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scherbelberg.bootstrap import env as env_module
from scherbelberg.bootstrap.env import EnvSpec, install_script

ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64"}[platform.machine()]
OTHER = "aarch64" if ARCH == "x86_64" else "x86_64"


def wheel(directory: Path, version: str, tag: str, body: str | None = None) -> tuple[str, str]:
    """A wheel shaped like uv's (the binary at uv-X.data/scripts/uv); its name and sha256."""
    name = f"uv-{version}-py3-none-{tag}.whl"
    with zipfile.ZipFile(directory / name, "w") as z:
        z.writestr(f"uv-{version}.data/scripts/uv", body or f"#!/bin/sh\necho uv {version} {tag}\n")
        z.writestr(f"uv-{version}.dist-info/METADATA", f"Name: uv\nVersion: {version}\n")
    return name, hashlib.sha256((directory / name).read_bytes()).hexdigest()


class Index:
    """A PEP 503 index on loopback: /simple/uv/ lists links, /files/ serves the wheels."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "simple" / "uv").mkdir(parents=True)
        (root / "files").mkdir()
        self.links: list[str] = []
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        # a short poll: shutdown() waits for one (0.5 s by default, per test)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def add(self, version: str, tag: str, yanked: bool = False, sha: str | None = None) -> None:
        name, real_sha = wheel(self.root / "files", version, tag)
        attrs = ' data-yanked=""' if yanked else ""
        self.links.append(f'<a href="/files/{name}#sha256={sha or real_sha}"{attrs}>{name}</a><br>')
        (self.root / "simple" / "uv" / "index.html").write_text(
            "<!DOCTYPE html><html><body>\n" + "\n".join(self.links) + "\n</body></html>\n"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    served = Index(tmp_path / "index")
    yield served
    served.close()


def fetch_uv(index_url: str, want: str, dest: Path) -> subprocess.CompletedProcess[str]:
    """The bootstrap's program, under a plain python3 with the stdlib only (as on a bare node)."""
    return subprocess.run(
        [sys.executable, "-I", "-c", env_module._UV_FROM_INDEX_PY, index_url, want, str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_uv_comes_from_the_newest_manylinux_wheel_for_this_machine(
    index: Index, tmp_path: Path
) -> None:
    index.add("0.4.9", f"manylinux_2_17_{ARCH}.manylinux2014_{ARCH}")
    index.add("0.5.0", f"manylinux_2_17_{ARCH}.manylinux2014_{ARCH}")
    index.add("0.5.0", f"musllinux_1_1_{ARCH}")
    index.add("0.5.0", "macosx_11_0_arm64")
    index.add("0.5.1", f"manylinux_2_17_{ARCH}.manylinux2014_{ARCH}", yanked=True)
    index.add("0.6.0", f"manylinux_2_17_{OTHER}.manylinux2014_{OTHER}")
    index.add("0.6.0rc1", f"manylinux_2_17_{ARCH}.manylinux2014_{ARCH}")
    dest = tmp_path / "uv"
    result = fetch_uv(index.url, "", dest)
    assert result.returncode == 0, result.stderr
    assert "scherbelberg: uv 0.5.0 from uv-0.5.0-py3-none-manylinux" in result.stdout
    assert os.access(dest, os.X_OK)
    out = subprocess.run([str(dest)], capture_output=True, text=True, check=True).stdout
    assert out == f"uv 0.5.0 manylinux_2_17_{ARCH}.manylinux2014_{ARCH}\n"


def test_uv_of_the_clients_version_even_if_yanked(index: Index, tmp_path: Path) -> None:
    index.add("0.4.9", f"manylinux_2_17_{ARCH}")
    index.add("0.5.1", f"manylinux_2_17_{ARCH}", yanked=True)
    dest = tmp_path / "uv"
    assert fetch_uv(index.url, "0.5.1", dest).returncode == 0  # pinned: PEP 592 allows it
    assert "uv 0.5.1" in subprocess.run([str(dest)], capture_output=True, text=True).stdout
    missing = fetch_uv(index.url, "0.3.0", tmp_path / "uv2")
    assert missing.returncode != 0
    assert f"scherbelberg: error: no uv 0.3.0 wheel for {ARCH} at {index.url}uv/" in (
        missing.stderr
    )


def test_a_wheel_that_does_not_match_its_sha256_is_refused(index: Index, tmp_path: Path) -> None:
    index.add("0.5.0", f"manylinux_2_17_{ARCH}", sha="0" * 64)
    dest = tmp_path / "uv"
    result = fetch_uv(index.url, "", dest)
    assert result.returncode != 0
    assert "does not have the sha256 the index names" in result.stderr
    assert not dest.exists()


def test_an_unreachable_index_fails_with_its_url(tmp_path: Path) -> None:
    with socket_closed_port() as port:
        url = f"http://127.0.0.1:{port}/simple/"
        result = subprocess.run(
            [sys.executable, "-c", env_module._UV_FROM_INDEX_PY.replace("2 ** attempt", "0"),
             url, "", str(tmp_path / "uv")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode != 0
    assert f"scherbelberg: error: could not fetch {url}uv/" in result.stderr


class socket_closed_port:
    """A loopback port nobody listens on (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        pass


# --- the uv-managed branch of the install script ---------------------------------------------

# Stands in for uv: records its arguments and what it was told; `venv` makes an environment whose
# python is this test's interpreter (so the script's own checks run for real).
FAKE_UV = """#!/bin/sh
echo "uv $*" >> "$UV_LOG"
case "$1" in
  python) env | grep '^UV_' | sort >> "$UV_LOG"
          cp "$UV_PYTHON_DOWNLOADS_JSON_URL" "$UV_LOG.downloads" ;;
  venv) mkdir -p "$4/bin" && touch "$4/pyvenv.cfg"
        ln -s "{python}" "$4/bin/python"
        printf '#!/bin/sh\\n' > "$4/bin/dask" && chmod +x "$4/bin/dask" ;;
esac
"""


def test_without_the_clients_python_the_script_gets_uv_and_the_downloads_list(
    index: Index, tmp_path: Path
) -> None:
    v = f"{sys.version_info.major}.{sys.version_info.minor}"
    name, sha = wheel(index.root / "files", "0.5.0", f"manylinux_2_17_{ARCH}",
                      FAKE_UV.format(python=sys.executable))  # fmt: skip
    index.links.append(f'<a href="/files/{name}#sha256={sha}">{name}</a>')
    (index.root / "simple" / "uv" / "index.html").write_text("\n".join(index.links))
    (index.root / "python").mkdir()
    (index.root / "python" / "downloads.json").write_text('{"cpython-3.11.2-linux": {}}\n')
    # python3.X here "does not work", so the script takes the uv-managed branch
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / f"python{v}").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / f"python{v}").chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)  # not chmod'ed: that is the real one
    env = EnvSpec(
        method="pip",
        python=v,
        pins=(),
        index_url=index.url,
        prefix=str(tmp_path / "opt" / "env"),
        python_downloads_json_url=index.url.replace("/simple/", "/python/downloads.json"),
    )
    log = tmp_path / "uv.log"
    result = subprocess.run(
        ["sh", "-eu"],
        input=install_script(env),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "UV_LOG": str(log)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"python{v} at {bin_dir}/python{v} does not work" in result.stdout
    assert "scherbelberg: uv 0.5.0 from uv-0.5.0" in result.stdout
    assert f"uv's Python downloads: {env.python_downloads_json_url}" in result.stdout
    assert "the environment matches the client: python " + v in result.stdout
    calls = log.read_text()
    assert f"uv python install {v}\n" in calls
    assert f"uv venv --python {v} {env.prefix}\n" in calls
    assert f"UV_PYTHON_INSTALL_DIR={tmp_path}/opt/python\n" in calls
    assert "UV_PYTHON_PREFERENCE=only-managed\n" in calls
    # uv read the list the script fetched (a file: uv before 0.9.10 reads no http URL)
    assert Path(f"{log}.downloads").read_text() == '{"cpython-3.11.2-linux": {}}\n'
    assert os.access(Path(env.prefix) / "bin" / "uv", os.X_OK)


# --- apt with a deadline ---------------------------------------------------------------------


def run_apt_get(tmp_path: Path, apt_script: str, clock: str = "") -> subprocess.CompletedProcess:
    """The script's apt_get function with stand-ins for apt-get, sleep (no wait) and date."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "apt-get").write_text("#!/bin/sh\n" + apt_script)
    (bin_dir / "sleep").write_text("#!/bin/sh\n")
    if clock:
        (bin_dir / "date").write_text("#!/bin/sh\n" + clock)
    for p in bin_dir.iterdir():
        p.chmod(0o755)
    program = (
        'log() { echo "scherbelberg: $*"; }\n'
        + env_module._APT_GET.replace("{deadline}", str(env_module.APT_DEADLINE))
        + "apt_get update && apt_get -y install python3.11-venv\n"
    )
    return subprocess.run(
        ["sh", "-eu", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STATE": str(tmp_path)},
    )


def test_apt_get_retries_while_another_apt_holds_the_lock(tmp_path: Path) -> None:
    # `update` fails twice as apt 2.6 does on the lists lock (no wait there), then works
    result = run_apt_get(
        tmp_path,
        'echo "$*" >> "$STATE/calls"\n'
        'case "$*" in *update*) n=$(cat "$STATE/n" 2>/dev/null || echo 0)\n'
        '  echo $((n+1)) > "$STATE/n"\n'
        '  [ "$n" -ge 2 ] || { echo "E: Could not get lock /var/lib/apt/lists/lock" >&2\n'
        "    exit 100; } ;;\n"
        "esac\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("scherbelberg: apt-get update failed (apt's lock held") == 2
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[-1] == (
        "-q -o DPkg::Lock::Timeout=60 -o Acquire::Retries=3 -y install python3.11-venv"
    )
    assert len(calls) == 4


def test_apt_get_gives_up_at_its_deadline(tmp_path: Path) -> None:
    # every call of `date` is a minute later; apt-get never succeeds
    clock = 't=$(cat "$STATE/t" 2>/dev/null || echo 1000); echo $((t+60)) > "$STATE/t"; echo "$t"\n'
    result = run_apt_get(tmp_path, 'echo "$*" >> "$STATE/calls"; exit 100\n', clock)
    assert result.returncode != 0
    assert f"apt-get update still failing after {env_module.APT_DEADLINE} s: giving up" in (
        result.stdout
    )
    attempts = len((tmp_path / "calls").read_text().splitlines())
    assert attempts == env_module.APT_DEADLINE // 60
