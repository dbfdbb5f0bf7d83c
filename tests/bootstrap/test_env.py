"""The node's environment: pins from the client, and the sh that installs and checks them."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from scherbelberg.bootstrap import env as env_module
from scherbelberg.bootstrap.env import (
    CONDA_NAMES,
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
    assert """' https://pypi.org/simple/ 0.4.30 "$T/uv" """ in script  # the program's argv
    assert """' https://pypi.org/simple/ '' "$T/uv" """ in install_script(spec())


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
    assert f"""' {MIRROR} '' "$T/uv" """ in script  # uv itself from the mirror too


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


def test_conda_installs_micromamba_and_the_pins_from_the_channel() -> None:
    """What the conda path would run; it is verified only on real Hetzner (needs conda-forge)."""
    assert "verified only on real hetzner" in (env_module._conda_install.__doc__ or "").lower()
    script = install_script(
        spec(method="conda", extra_packages=("xarray>=2024",), index_url=MIRROR)
    )
    sh_syntax_ok(script)
    assert "x86_64|amd64) A=linux-64 ;;" in script
    assert "aarch64|arm64) A=linux-aarch64 ;;" in script
    assert 'fetch "https://micro.mamba.pm/api/micromamba/$A/latest"' in script
    assert "export MAMBA_ROOT_PREFIX=/opt/scherbelberg/micromamba\n" in script
    [create] = [c for c in commands(script, "create")]
    assert create == [
        "$MAMBA_ROOT_PREFIX/bin/micromamba",
        "create",
        "-y",
        "-p",
        "$P",
        "--override-channels",
        "-c",
        "conda-forge",
        "python=3.11",
        "pip",
        "dask-core=2024.8.0",
        "distributed=2024.8.0",
        "msgpack-python=1.0.8",
    ]
    [pip] = [c for c in commands(script, "pip") if c[:3] == ["$P/bin/python", "-m", "pip"]]
    assert pip == [
        "$P/bin/python",
        "-m",
        "pip",
        "install",
        "--index-url",
        MIRROR,
        "--trusted-host",
        "198.18.0.253:8080",
        "xarray>=2024",
    ]
    assert "uv" not in re.findall(r"\buv\b", script)


def test_conda_channel_and_no_extras() -> None:
    script = install_script(spec(method="conda", conda_channel="my-channel"))
    sh_syntax_ok(script)
    assert commands(script, "create")[0][6:8] == ["-c", "my-channel"]
    assert "-m pip install" not in script


# --- preinstalled, and the check ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["pip", "conda"])
def test_preinstalled_only_checks(method: str) -> None:
    script = install_script(spec(method=method, preinstalled=True))
    sh_syntax_ok(script)
    for installing in (
        "pip install",
        "micromamba",
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
            input=head.replace('fetch "', 'true "').replace("tar -xjf", "true") + "fresh_prefix\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert "exists and is not an environment" in result.stderr
        assert (tmp_path / "precious").read_text() == "keep me"


FAKE_MICROMAMBA = """\
#!/bin/sh
echo "micromamba $*" >>"$STUB_CALLS"
while [ $# -gt 0 ]; do [ "$1" != -p ] || P=$2; shift; done
mkdir -p "$P/bin" "$P/conda-meta"
printf '%s\\n' '#!/bin/sh' 'echo "python $*" >>"$STUB_CALLS"' '[ "$1" != -m ] || exit 0' \
  'exec {python} "$@"' >"$P/bin/python"
chmod +x "$P/bin/python"
ln -s {dask} "$P/bin/dask"
"""


def test_conda_script_runs_with_a_fake_micromamba(tmp_path: Path) -> None:
    """The conda path end to end, with the download replaced by a tarball holding a fake
    micromamba that makes an env whose python is this test's (so the check runs for real)."""
    fake = tmp_path / "fake-micromamba"
    fake.write_text(
        FAKE_MICROMAMBA.format(python=sys.executable, dask=Path(sys.executable).parent / "dask")
    )
    fake.chmod(0o755)
    tarball = tmp_path / "micromamba.tar.bz2"
    with tarfile.open(tarball, "w:bz2") as tar:
        tar.add(fake, arcname="bin/micromamba")
        tar.add(fake, arcname="info/other")
    client = client_env_spec("conda", ["xarray>=2024"])
    env = replace(client, prefix=str(tmp_path / "sbg" / "env"))
    script = install_script(env)
    download = 'fetch "https://micro.mamba.pm/api/micromamba/$A/latest" "$M"'
    assert download in script
    script = script.replace(download, f'cp {tarball} "$M"')
    calls = tmp_path / "calls"
    result = subprocess.run(
        ["sh", "-eu"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "STUB_CALLS": str(calls)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "sbg" / "micromamba" / "bin" / "micromamba").exists()
    assert not (tmp_path / "sbg" / "micromamba" / "info").exists()
    logged = calls.read_text().splitlines()
    specs = " ".join(f"{CONDA_NAMES.get(n, n)}={v}" for n, v in client.pins)
    assert logged[0] == (
        f"micromamba create -y -p {env.prefix} --override-channels -c conda-forge "
        f"python={client.python} pip {specs}"
    )
    assert logged[1] == "python -m pip install xarray>=2024"
    assert logged[2].startswith("python -c import sys, importlib.metadata")
    assert "the environment matches the client" in result.stdout


def test_the_dashboard_gets_bokeh_unless_the_user_chose_one() -> None:
    from distributed.versions import BOKEH_REQUIREMENT

    from scherbelberg.bootstrap.env import dashboard_requirement, with_dashboard

    env = client_env_spec(extra_packages=["xarray"])
    wanted = dashboard_requirement()
    assert wanted == str(BOKEH_REQUIREMENT) or wanted.startswith("bokeh==")
    assert with_dashboard(env).extra_packages == ("xarray", wanted)
    mine = client_env_spec(extra_packages=["Bokeh==3.4.0"])
    assert with_dashboard(mine) == mine
