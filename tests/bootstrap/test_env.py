"""The node's environment: pins from the client, and the sh that installs and checks them."""

from __future__ import annotations

import importlib.metadata
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from scherbelberg.bootstrap import env as env_module
from scherbelberg.bootstrap.env import (
    PINNED_DISTRIBUTIONS,
    EnvSpec,
    client_env_spec,
    install_script,
)

PINS = (("dask", "2024.8.0"), ("distributed", "2024.8.0"), ("msgpack", "1.0.8"))
MIRROR = "http://198.18.0.253:8080/simple/"


def spec(**changes: object) -> EnvSpec:
    fields: dict[str, object] = {"method": "pip", "python": "3.11", "pins": PINS}
    fields.update(changes)
    return EnvSpec(**fields)  # type: ignore[arg-type]


def commands(script: str, program: str) -> list[list[str]]:
    """Every command line of `script` that runs `program`, as shell words."""
    joined = script.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # a line of a multi-line quoted python program
            continue
        if program in words:
            found.append(words[: words.index("||")] if "||" in words else words)
    return found


def sh_syntax_ok(script: str) -> None:
    result = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- pins from the client ----------------------------------------------------------------------


def installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def test_pins_are_the_clients_installed_versions() -> None:
    env = client_env_spec()
    expected = tuple(
        (name, version) for name in PINNED_DISTRIBUTIONS if (version := installed(name)) is not None
    )
    assert env.pins == expected
    assert dict(env.pins)["dask"] == importlib.metadata.version("dask")
    assert dict(env.pins)["distributed"] == importlib.metadata.version("distributed")
    assert env.python == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert env.uv_version == installed("uv")
    assert env.method == "pip" and not env.preinstalled and env.index_url is None


def test_missing_distributions_are_not_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name in ("pyarrow", "lz4", "uv"):
            raise importlib.metadata.PackageNotFoundError(name)
        return "1.2.3" if name == "numpy" else real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    env = client_env_spec("conda", ["xarray>=2024"], MIRROR, preinstalled=True)
    names = [name for name, _ in env.pins]
    assert "pyarrow" not in names and "lz4" not in names
    assert ("numpy", "1.2.3") in env.pins
    assert env.uv_version is None
    assert (env.method, env.extra_packages, env.index_url) == ("conda", ("xarray>=2024",), MIRROR)
    assert env.preinstalled


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "apt"},
        {"python": "3"},
        {"python": "3.11.7"},
        {"pins": (("dask", ">=2024"),)},
        {"pins": (("da sk", "1.0"),)},
        {"prefix": "relative/env"},
        {"prefix": "/"},
        {"index_url": "file:///srv/simple"},
        {"extra_packages": ("--extra-index-url=http://evil",)},
        {"extra_packages": ("",)},
        {"uv_version": "0.4; rm -rf /"},
        {"python_downloads_json_url": "/srv/downloads.json"},  # the node fetches it: a URL
    ],
)
def test_bad_specs_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        spec(**changes)


# --- pip (uv) ----------------------------------------------------------------------------------


def test_pip_installs_uv_then_the_exact_pins_and_extras() -> None:
    script = install_script(spec(extra_packages=("xarray>=2024", "zarr[jupyter]<3")))
    sh_syntax_ok(script)
    assert 'if [ -n "$PY" ] && ! "$PY" -m venv "$P"; then' in script
    assert ["$P/bin/pip", "install", "uv"] in commands(script, "uv")
    [uv_pip] = [c for c in commands(script, "$P/bin/uv") if c[1:3] == ["pip", "install"]]
    assert uv_pip == [
        "$P/bin/uv",
        "pip",
        "install",
        "--python",
        "$P/bin/python",
        "dask==2024.8.0",
        "distributed==2024.8.0",
        "msgpack==1.0.8",
        "xarray>=2024",
        "zarr[jupyter]<3",
    ]
    assert "P=/opt/scherbelberg/env\n" in script
    assert "V=3.11\n" in script
    assert "--index-url" not in script  # PyPI by default


def test_pip_uses_the_clients_uv_version() -> None:
    script = install_script(spec(uv_version="0.4.30"))
    assert ["$P/bin/pip", "install", "uv==0.4.30"] in commands(script, "uv==0.4.30")
    # without python3.X: the same version from the index (tests/bootstrap/test_uv_bootstrap.py)
    assert """' "$I" 0.4.30 "$T/uv" """ in script  # the program's argv
    assert "I=https://pypi.org/simple/\n" in script
    assert """' "$I" '' "$T/uv" """ in install_script(spec())


def test_pip_commands_use_the_index_url() -> None:
    script = install_script(spec(index_url=MIRROR, extra_packages=("xarray",)))
    [pip_uv] = [c for c in commands(script, "install") if c[0] == "$P/bin/pip"]
    # a plain-http mirror must be trusted, or pip ignores it
    assert pip_uv == [
        "$P/bin/pip",
        "install",
        "--index-url",
        MIRROR,
        "--trusted-host",
        "198.18.0.253:8080",
        "uv",
    ]
    [uv_pip] = [c for c in commands(script, "$P/bin/uv") if c[1:3] == ["pip", "install"]]
    assert uv_pip[5:7] == ["--index-url", MIRROR]
    secure = install_script(spec(index_url="https://pypi.example.org/simple"))
    assert "--trusted-host" not in secure
    assert secure.count("--index-url https://pypi.example.org/simple") == 2
    assert f"I={MIRROR}\n" in script  # uv itself from the mirror too


def test_pip_falls_back_to_a_uv_managed_python() -> None:
    script = install_script(spec(python="3.12", prefix="/srv/sbg/env"))
    assert 'PY=$(command -v "python$V" || true)' in script
    assert 'apt_get -y install "python$V-venv"' in script  # Debian without python3-venv
    assert ["$T/uv", "python", "install", "$V"] in commands(script, "python")
    assert ["$T/uv", "venv", "--python", "$V", "$P"] in commands(script, "venv")
    assert "UV_PYTHON_INSTALL_DIR=/srv/sbg/python" in script


def test_quoting_keeps_requirements_as_single_words() -> None:
    script = install_script(spec(extra_packages=("pkg; sys_platform == 'linux'", "a$(touch x)")))
    sh_syntax_ok(script)
    [uv_pip] = [c for c in commands(script, "$P/bin/uv") if c[1:3] == ["pip", "install"]]
    assert uv_pip[-2:] == ["pkg; sys_platform == 'linux'", "a$(touch x)"]


# --- conda -------------------------------------------------------------------------------------


CONDA_LINES = (
    "http://198.18.0.253/conda/noarch/dask-2024.8.0-py_0.conda#" + "a" * 32,
    "http://198.18.0.253/conda/linux-64/python-3.11.2-h29a6a91_0_cpython.conda#" + "b" * 32,
)
ARM_LINES = (CONDA_LINES[0], CONDA_LINES[1].replace("linux-64", "linux-aarch64"))


def test_conda_links_the_explicit_list_of_the_nodes_platform_with_py_rattler() -> None:
    """The script of the conda method: the list for the node's subdir, py-rattler (pinned) from
    the package index into its own venv, its install without a solve, then the pip extras."""
    env = spec(
        method="conda",
        extra_packages=("xarray==2024.1.0",),
        index_url=MIRROR,
        conda_packages=(("linux-64", CONDA_LINES), ("linux-aarch64", ARM_LINES)),
    )
    script = install_script(env)
    sh_syntax_ok(script)
    assert "x86_64|amd64) A=linux-64 ;;" in script
    lists = {c[0].rstrip(")"): c[3:-2] for c in commands(script, "printf")}
    assert lists == {"linux-64": list(CONDA_LINES), "linux-aarch64": list(ARM_LINES)}
    assert 'die "the client\'s conda environment has no package list for $A"' in script
    [rattler] = [c for c in commands(script, "pip") if "$R/bin/python" in c]
    assert rattler[-3:] == ["--index-url", MIRROR, f"py-rattler=={env_module.RATTLER_VERSION}"]
    program = shlex.quote(env_module._RATTLER_INSTALL_PY)
    assert f'"$R/bin/python" -c {program} "$T/explicit.txt" "$P" "$R/pkgs"' in script
    [extras] = [c for c in commands(script, "$T/uv") if "$P/bin/python" in c]
    assert extras == [
        "$T/uv", "pip", "install", "--python", "$P/bin/python", "--index-url", MIRROR,
        "xarray==2024.1.0",
    ]  # fmt: skip
    assert "micromamba" not in script and "conda-forge" not in script


def test_each_node_gets_only_its_platforms_conda_list() -> None:
    """user_data is limited to 32 KiB: an arm worker carries linux-aarch64's list only."""
    both = spec(
        method="conda", conda_packages=(("linux-64", CONDA_LINES), ("linux-aarch64", ARM_LINES))
    )
    arm = env_module.for_architecture(both, "arm")
    assert arm.conda_packages == (("linux-aarch64", ARM_LINES),)
    assert env_module.for_architecture(both, "x86").conda_packages == (("linux-64", CONDA_LINES),)
    assert [c[0] for c in commands(install_script(arm), "printf")] == ["linux-aarch64)"]
    assert env_module.for_architecture(spec(), "arm") == spec()


def test_conda_without_a_list_for_the_node_says_so() -> None:
    """A conda spec from a client outside conda (settings refuse it first) still fails
    clearly on the node, after making nothing."""
    script = install_script(spec(method="conda"))
    sh_syntax_ok(script)
    assert "printf" not in script and "-m pip install" not in script


def test_conda_lists_are_checked() -> None:
    with pytest.raises(ValueError, match="bad conda package list"):
        spec(method="conda", conda_packages=(("linux-64", ("http://x/y.conda#nomd5",)),))
    with pytest.raises(ValueError, match="bad conda package list"):
        spec(method="conda", conda_packages=(("linux-64", (CONDA_LINES[0] + "' rm -rf /",)),))


# --- preinstalled, and the check ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["pip", "conda"])
def test_preinstalled_only_checks(method: str) -> None:
    script = install_script(spec(method=method, preinstalled=True))
    sh_syntax_ok(script)
    for installing in (
        "pip install",
        "rattler",
        "-m venv",
        "uv venv",
        "fresh_prefix\n",
        "apt-get",
    ):
        assert installing not in script
    assert '[ -x "$P/bin/python" ]' in script
    assert "dask==2024.8.0 distributed==2024.8.0 msgpack==1.0.8" in script


def run_check(env: EnvSpec) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-eu"], input=install_script(env), capture_output=True, text=True, timeout=60
    )


def test_check_passes_on_an_env_that_matches() -> None:
    """The check, run for real against this test's own environment."""
    env = EnvSpec(
        method="pip",
        python=client_env_spec().python,
        pins=client_env_spec().pins,
        prefix=sys.prefix,
        preinstalled=True,
    )
    result = run_check(env)
    assert result.returncode == 0, result.stderr
    assert "the environment matches the client" in result.stdout
    assert f"dask=={importlib.metadata.version('dask')}" in result.stdout


def test_check_names_every_mismatch() -> None:
    client = dict(client_env_spec().pins)
    env = EnvSpec(
        method="pip",
        python="3.7",
        pins=(("dask", "1999.1.0"), ("toolz", client["toolz"]), ("no-such-dist", "1.0")),
        prefix=sys.prefix,
        preinstalled=True,
    )
    result = run_check(env)
    assert result.returncode != 0
    assert "scherbelberg: error: the environment does not match the client:" in result.stderr
    assert f"dask {client['dask']} (client: 1999.1.0)" in result.stderr
    assert "no-such-dist not installed (client: 1.0)" in result.stderr
    assert f"python {sys.version_info.major}.{sys.version_info.minor} (client: 3.7)" in (
        result.stderr
    )
    assert "toolz" not in result.stderr


def test_check_fails_without_an_env(tmp_path: Path) -> None:
    result = run_check(spec(prefix=str(tmp_path / "nothing"), preinstalled=True))
    assert result.returncode == 1
    assert f"scherbelberg: error: no python at {tmp_path}/nothing/bin/python" in result.stderr


def test_install_refuses_to_replace_a_directory_that_is_not_an_env(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep me")
    for method in ("pip", "conda"):
        script = install_script(spec(method=method, prefix=str(tmp_path)))
        # run only up to the point where the prefix would be replaced
        head = script[: script.index("fresh_prefix\n", script.index("fresh_prefix()") + 20)]
        result = subprocess.run(
            ["sh", "-eu"],
            input=head + "fresh_prefix\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert "exists and is not an environment" in result.stderr
        assert (tmp_path / "precious").read_text() == "keep me"


def test_the_dashboard_gets_bokeh_unless_the_user_chose_one() -> None:
    from distributed.versions import BOKEH_REQUIREMENT

    from scherbelberg.bootstrap.env import dashboard_requirement, with_dashboard

    env = client_env_spec(extra_packages=["xarray"])
    wanted = dashboard_requirement()
    assert wanted == str(BOKEH_REQUIREMENT) or wanted.startswith("bokeh==")
    assert with_dashboard(env).extra_packages == ("xarray", wanted)
    mine = client_env_spec(extra_packages=["Bokeh==3.4.0"])
    assert with_dashboard(mine) == mine
