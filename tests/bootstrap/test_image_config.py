"""The image builder's #cloud-config: only the env install, the node's wait protocol, no TLS,
no Dask service; valid for cloud-init and sh; its bootstrap reports ready and failure."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from scherbelberg.bootstrap import WAIT_COMMAND, EnvSpec, client_env_spec, install_script
from scherbelberg.bootstrap import cloud_config as cc
from scherbelberg.cluster.env_images import env_hash
from tests.bootstrap.conftest import assert_valid_cloud_config
from tests.bootstrap.test_cloud_config import Sandbox, files, parsed

PINS = (("dask", "2024.8.0"), ("distributed", "2024.8.0"))


def env(**changes: object) -> EnvSpec:
    return replace(EnvSpec(method="pip", python="3.11", pins=PINS), **changes)  # type: ignore[arg-type]


def config(host_key: tuple[str, str], spec: EnvSpec | None = None) -> str:
    return cc.build_image_config(spec or env(), host_key[0], host_key[1])


def test_only_the_install_and_the_wait_helper(host_key: tuple[str, str]) -> None:
    text = config(host_key)
    data = parsed(text)
    assert set(files(text)) == {cc.BOOTSTRAP_COMMAND, WAIT_COMMAND}
    assert data["runcmd"] == [[cc.BOOTSTRAP_COMMAND]]
    assert data["ssh_keys"]["ed25519_public"] == host_key[1].strip()
    assert data["ssh_deletekeys"] is True
    assert "bootcmd" not in data  # no TLS directory
    for word in ("BEGIN CERTIFICATE", "PRIVATE KEY-----\n", "systemctl", "dask-", cc.TLS_DIR):
        bootstrap = files(text)[cc.BOOTSTRAP_COMMAND]["content"]
        assert word not in bootstrap, word
    assert "CERTIFICATE" not in text
    bootstrap = files(text)[cc.BOOTSTRAP_COMMAND]["content"]
    assert install_script(env()) in bootstrap
    assert "journalctl" not in files(text)[WAIT_COMMAND]["content"]


def test_refuses_a_preinstalled_env_and_bad_keys(host_key: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="preinstalled"):
        config(host_key, env(preinstalled=True))
    with pytest.raises(ValueError, match="ed25519"):
        cc.build_image_config(env(), host_key[0], "ssh-rsa AAAA")
    with pytest.raises(ValueError, match="OpenSSH"):
        cc.build_image_config(env(), "nope", host_key[1])
    with pytest.raises(ValueError, match="over Hetzner's limit"):
        config(host_key, env(extra_packages=tuple(f"package-{i}" for i in range(4000))))


@pytest.mark.parametrize("method", ["pip", "conda"])
def test_valid_for_cloud_init_and_sh(
    host_key: tuple[str, str], tmp_path: Path, method: str
) -> None:
    spec = client_env_spec(
        method=method,  # type: ignore[arg-type]
        extra_packages=["xarray>=2024", "odd'quote"],
        index_url="http://mirror.local/simple",
    )
    text = config(host_key, spec)
    assert_valid_cloud_config(text, tmp_path)
    scripts = dict(cc.shell_scripts(text))
    assert set(scripts) == {cc.BOOTSTRAP_COMMAND, WAIT_COMMAND}
    for name, script in scripts.items():
        for shell in ("sh", "bash"):
            checked = subprocess.run([shell, "-n"], input=script, capture_output=True, text=True)
            assert checked.returncode == 0, f"{name} ({shell}): {checked.stderr}"


def _run_with_install(
    tmp_path: Path, host_key: tuple[str, str], install: EnvSpec
) -> tuple[Sandbox, subprocess.CompletedProcess[str]]:
    """The builder's bootstrap, with its (slow) install swapped for `install`'s script."""
    box = Sandbox(tmp_path)
    spec = env()
    script = files(config(host_key, spec))[cc.BOOTSTRAP_COMMAND]["content"]
    assert install_script(spec) in script
    script = script.replace(install_script(spec), install_script(install))
    return box, box.run(script)


def this_env(**changes: object) -> EnvSpec:
    return replace(client_env_spec(preinstalled=True), prefix=sys.prefix, **changes)  # type: ignore[arg-type]


def test_bootstrap_becomes_ready(tmp_path: Path, host_key: tuple[str, str]) -> None:
    box, result = _run_with_install(tmp_path, host_key, this_env())
    assert result.returncode == 0, box.log.read_text()
    assert (box.state / "ready").exists() and not (box.state / "failed").exists()
    assert box.read("stage") == "environment\n"
    log = box.log.read_text()
    assert "stage environment" in log and "the environment matches the client" in log
    assert log.rstrip().endswith("ready")
    assert result.stdout == result.stderr == ""
    wait = files(config(host_key))[WAIT_COMMAND]["content"]
    assert box.run(wait, "5").returncode == 0


def test_bootstrap_failure_is_reported(tmp_path: Path, host_key: tuple[str, str]) -> None:
    box, result = _run_with_install(tmp_path, host_key, this_env(pins=(("dask", "1999.1.0"),)))
    assert result.returncode != 0
    failed = box.read("failed")
    assert failed.startswith("environment: exit 1: the environment does not match the client")
    wait = files(config(host_key))[WAIT_COMMAND]["content"]
    waited = box.run(wait, "5")
    assert waited.returncode == 1
    assert "bootstrap failed: environment" in waited.stdout
    assert "journalctl" not in waited.stdout


def test_env_hash_is_about_the_contents() -> None:
    """Same contents, same hash; any change of what is installed, the architecture or the
    base image gives another (issue 11: an old image is never used for a new environment)."""
    base = env()

    def h(e: EnvSpec = base, architecture: str = "x86", image: str = "debian-12") -> str:
        return env_hash(e, architecture, image)

    assert h() == h(replace(base, index_url="http://mirror.local/simple"))
    assert h() == h(replace(base, preinstalled=True))
    assert h() == h(replace(base, pins=tuple(reversed(PINS))))
    assert h() != h(replace(base, python="3.12"))
    assert h() != h(replace(base, method="conda"))
    assert h() != h(replace(base, extra_packages=("xarray",)))
    assert h() != h(replace(base, pins=(("dask", "2024.9.0"),)))
    assert h() != h(architecture="arm")
    assert h() != h(image="debian-13")
    assert len(h()) == 16 and h().isalnum()
