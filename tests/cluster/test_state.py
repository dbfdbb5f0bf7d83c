"""Local cluster state: round trips, permissions, atomicity, names, and no token on disk."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import asyncssh
import platformdirs
import pytest

from scherbelberg.cluster import ssh
from scherbelberg.cluster.state import (
    MAX_NAME_LENGTH,
    ClusterNotFound,
    ClusterState,
    generate_cluster_name,
    state_root,
    validate_cluster_name,
)
from scherbelberg.cluster.tls import ClusterCA

TOKEN = "s3cr3t-T0KEN-" + "x" * 51  # looks like a 64-character Hetzner token


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "state"
    monkeypatch.setenv("SCHERBELBERG_STATE_DIR", str(root))
    monkeypatch.setenv("HCLOUD_TOKEN", TOKEN)
    return root


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _state(name: str = "demo") -> ClusterState:
    return ClusterState(
        name=name,
        endpoint="http://127.0.0.1:8080/v1",
        created=1_700_000_000.5,
        location="fsn1",
        labels={"scherbelberg": name},
        network_id=7,
        firewall_id=8,
        ssh_key_id=9,
        placement_group_ids=[1, 2],
        scheduler={
            "server_id": 10,
            "name": f"{name}-scheduler",
            "public_ip": "203.0.113.1",
            "private_ip": "10.0.0.2",
        },
        workers={
            f"{name}-worker-1": {
                "server_id": 11,
                "name": f"{name}-worker-1",
                "public_ip": "203.0.113.2",
                "private_ip": "10.0.0.3",
            },
        },
        settings={"scheduler_type": "cx22", "worker_type": "cx32", "image": "debian-12"},
    )


def test_state_root(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert state_root() == state_dir
    monkeypatch.delenv("SCHERBELBERG_STATE_DIR")
    root = state_root()
    assert root == platformdirs.user_data_path("scherbelberg") / "clusters"
    assert Path.cwd() not in root.parents


def test_round_trip_and_permissions(state_dir: Path) -> None:
    state = _state()
    state.save()
    assert state.directory == state_dir / "demo"
    assert _mode(state.directory) == 0o700
    assert _mode(state.directory / "state.json") == 0o600
    loaded = ClusterState.load("demo")
    assert loaded == state
    assert json.loads((state.directory / "state.json").read_text())["version"] == 1

    loaded.workers["demo-worker-2"] = {"server_id": 12, "name": "demo-worker-2"}
    loaded.save()
    assert ClusterState.load("demo").workers.keys() == {"demo-worker-1", "demo-worker-2"}
    assert _mode(state.directory / "state.json") == 0o600


def test_loose_directory_is_tightened(state_dir: Path) -> None:
    (state_dir / "demo").mkdir(parents=True, mode=0o755)
    os.chmod(state_dir / "demo", 0o755)
    os.chmod(state_dir, 0o755)
    _state().save()
    assert _mode(state_dir / "demo") == 0o700
    assert _mode(state_dir) == 0o700  # the root too: cluster names are nobody else's business


def test_state_root_is_made_private(state_dir: Path) -> None:
    """Issue 7: the root was created 0755 (mkdir's parents ignore its mode)."""
    assert not state_dir.exists()
    _state().save()
    assert _mode(state_dir) == 0o700


def test_save_is_atomic(monkeypatch: pytest.MonkeyPatch) -> None:
    state = _state()
    state.save()
    before = (state.directory / "state.json").read_text()

    def crash(src: object, dst: object) -> None:
        raise OSError("disk gone")

    state.location = "nbg1"
    with monkeypatch.context() as patch, pytest.raises(OSError, match="disk gone"):
        patch.setattr(os, "replace", crash)
        state.save()
    assert (state.directory / "state.json").read_text() == before
    assert sorted(p.name for p in state.directory.iterdir()) == ["state.json"]  # no temp left
    assert ClusterState.load("demo").location == "fsn1"


def test_list_and_delete(state_dir: Path) -> None:
    assert ClusterState.list_names() == []  # root does not even exist yet
    for name in ["zeta", "alpha", "mid-1"]:
        _state(name).save()
    (state_dir / "stray-dir").mkdir()  # no state.json: not a cluster
    (state_dir / "file.txt").write_text("x")
    assert ClusterState.list_names() == ["alpha", "mid-1", "zeta"]

    alpha = ClusterState.load("alpha")
    alpha.save_ssh_key(ssh.generate_ed25519()[0])
    alpha.save_ca(ClusterCA.generate("alpha"))
    alpha.delete()
    assert not (state_dir / "alpha").exists()
    assert ClusterState.list_names() == ["mid-1", "zeta"]
    alpha.delete()  # already gone: fine


def test_not_found() -> None:
    with pytest.raises(ClusterNotFound, match="no cluster named 'ghost'") as info:
        ClusterState.load("ghost")
    assert info.value.name == "ghost"
    assert isinstance(info.value, LookupError)


def test_load_refuses_bad_names_and_corrupt_files(state_dir: Path) -> None:
    with pytest.raises(ValueError, match="invalid cluster name"):
        ClusterState.load("../etc")
    (state_dir / "broken").mkdir(parents=True)
    (state_dir / "broken" / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt cluster state"):
        ClusterState.load("broken")
    (state_dir / "broken" / "state.json").write_text(
        json.dumps({"version": 1, **json.loads(_state("other").to_json()), "version2": 0})
    )
    with pytest.raises(ValueError, match="corrupt cluster state"):
        ClusterState.load("broken")


@pytest.mark.parametrize("name", ["a", "demo", "sbg-k3x9q0", "x1-2-3", "a" * 40])
def test_valid_names(name: str) -> None:
    assert validate_cluster_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Demo",
        "-demo",
        "demo-",
        "1demo",
        "123",
        "de_mo",
        "de.mo",
        "de mo",
        "a" * 41,
        "../x",
        "x/y",
        "demo\n",
        "dé",
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid cluster name") as info:
        validate_cluster_name(name)
    assert "\n" not in str(info.value).replace(repr(name), "")
    with pytest.raises(ValueError):
        _state(name)


def test_generated_names_are_valid_and_random() -> None:
    names = {generate_cluster_name() for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert validate_cluster_name(name).startswith("sbg-") and len(name) == 10
    # the longest name allowed, with a worker suffix, is still a valid hostname label (the
    # server's hostname); one letter more is refused
    longest = validate_cluster_name("a" * MAX_NAME_LENGTH) + "-worker-99999"
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", longest), longest
    with pytest.raises(ValueError):
        validate_cluster_name("a" * (MAX_NAME_LENGTH + 1))


def test_token_never_serialized() -> None:
    assert not any("token" in f for f in ClusterState.__dataclass_fields__)
    state = _state()
    state.save()
    for path in state.directory.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text()
    assert TOKEN not in state.to_json()
    # and a careless caller who puts the token into settings cannot write it out
    state.settings["oops"] = os.environ["HCLOUD_TOKEN"]
    with pytest.raises(ValueError, match="HCLOUD_TOKEN"):
        state.save()
    assert TOKEN not in (state.directory / "state.json").read_text()


def test_ssh_key_and_host_keys() -> None:
    state = _state()
    private, public = ssh.generate_ed25519()
    path = state.save_ssh_key(private)  # before state.json exists
    assert path == state.ssh_key_path() == state.directory / "ssh" / "id_ed25519"
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert _mode(state.directory) == 0o700
    assert asyncssh.import_private_key(path.read_text()).export_public_key().split()[1] == (
        public.split()[1].encode()
    )

    assert state.host_keys() == {}
    _, key_s = ssh.generate_ed25519("sched")
    _, key_w = ssh.generate_ed25519()
    _, key_w2 = ssh.generate_ed25519()
    state.save_host_key("demo-scheduler", key_s)
    state.save_host_key("demo-worker-1", key_w)
    state.save_host_key("demo-worker-1", key_w2)  # replaced, not duplicated
    bare = {
        k: " ".join(v.split()[:2])
        for k, v in {"demo-scheduler": key_s, "demo-worker-1": key_w2}.items()
    }
    assert state.host_keys() == bare
    known_hosts = state.directory / "ssh" / "known_hosts"
    assert known_hosts.read_text().splitlines() == [f"{k} {v}" for k, v in bare.items()]

    by_ip = state.known_hosts_by_address().splitlines()
    assert sorted(by_ip) == sorted(
        [
            f"203.0.113.1 {bare['demo-scheduler']}",
            f"10.0.0.2 {bare['demo-scheduler']}",
            f"203.0.113.2 {bare['demo-worker-1']}",
            f"10.0.0.3 {bare['demo-worker-1']}",
        ]
    )
    with pytest.raises(ValueError):
        state.save_host_key("bad name", key_s)


def test_ca_and_client_tls() -> None:
    state = _state()
    with pytest.raises(FileNotFoundError, match="no CA"):
        state.load_ca()
    with pytest.raises(FileNotFoundError, match="no client TLS"):
        state.client_tls()
    ca = ClusterCA.generate("demo")
    state.save_ca(ca)
    assert state.load_ca() == ca
    tls_dir = state.directory / "tls"
    assert _mode(tls_dir) == 0o700 and _mode(state.directory) == 0o700
    assert _mode(tls_dir / "ca-key.pem") == 0o600

    written = state.save_client_tls(ca.cert_pem, ca.issue("client", "demo-client"))
    assert state.client_tls() == written
    assert written.key_file == tls_dir / "client-key.pem"
    assert written.cert_file == tls_dir / "client.pem"
    assert _mode(written.key_file) == 0o600
    assert state.load_ca() == ca  # rewriting ca.pem did not change it
