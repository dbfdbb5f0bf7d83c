"""A node's #cloud-config: valid for cloud-init, complete, private, small, and its scripts work."""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import dask.config
import distributed
import pytest
import yaml
from distributed.comm.core import CommClosedError
from distributed.comm.tcp import TCPConnector

from scherbelberg.bootstrap import (
    LOG_FILE,
    MAX_USER_DATA,
    STATE_DIR,
    WAIT_COMMAND,
    EnvSpec,
    NodeConfig,
    build_cloud_config,
    client_env_spec,
    service_name,
)
from scherbelberg.bootstrap import cloud_config as cc
from tests.bootstrap.conftest import assert_valid_cloud_config

MakeNode = Callable[..., NodeConfig]
ROLES = ["scheduler", "worker"]


def parsed(text: str) -> dict[str, Any]:
    assert text.startswith("#cloud-config\n")
    config = yaml.safe_load(text)
    assert isinstance(config, dict)
    return config


def files(text: str) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in parsed(text)["write_files"]}


def unit(text: str, role: str) -> str:
    return str(files(text)[f"/etc/systemd/system/{service_name(role)}.service"]["content"])  # type: ignore[arg-type]


def exec_start(text: str, role: str) -> str:
    [line] = [x for x in unit(text, role).splitlines() if x.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=")


# --- structure ---------------------------------------------------------------------------------


def test_constants() -> None:
    assert MAX_USER_DATA == 32768
    assert STATE_DIR == "/var/lib/scherbelberg"
    assert LOG_FILE == "/var/log/scherbelberg/bootstrap.log"
    assert WAIT_COMMAND == "/usr/local/bin/scherbelberg-wait"
    assert service_name("scheduler") == "dask-scheduler"
    assert service_name("worker") == "dask-worker"
    with pytest.raises(ValueError):
        service_name("client")  # type: ignore[arg-type]


@pytest.mark.parametrize("role", ROLES)
def test_round_trip_and_contents(make_node: MakeNode, role: str) -> None:
    node = make_node(role)
    text = build_cloud_config(node)
    config = parsed(text)
    assert yaml.safe_load(yaml.safe_dump(config)) == config
    written = files(text)
    assert written[cc.CA_FILE]["content"] == node.tls.ca_pem
    assert written[cc.CERT_FILE]["content"] == node.tls.cert_pem
    assert written[cc.KEY_FILE]["content"] == node.tls.key_pem
    assert config["runcmd"] == [[cc.BOOTSTRAP_COMMAND]]
    # the private key's directory is made private before write_files puts the key in it
    assert config["bootcmd"] == [
        ["install", "-d", "-m", "0700", "-o", "root", "-g", "root", "/etc/scherbelberg/tls"]
    ]
    assert "chmod 0700 /etc/scherbelberg/tls" in written[cc.BOOTSTRAP_COMMAND]["content"]


@pytest.mark.parametrize("role", ROLES)
def test_every_file_has_owner_and_permissions(make_node: MakeNode, role: str) -> None:
    written = files(build_cloud_config(make_node(role)))
    modes = {path: entry["permissions"] for path, entry in written.items()}
    expected = {
        "/etc/scherbelberg/tls/ca.pem": "0644",
        "/etc/scherbelberg/tls/node.pem": "0644",
        "/etc/scherbelberg/tls/node-key.pem": "0600",
        "/etc/scherbelberg/dask/scherbelberg.yaml": "0644",
        "/usr/local/sbin/scherbelberg-bootstrap": "0700",
        "/usr/local/bin/scherbelberg-wait": "0755",
        f"/etc/systemd/system/dask-{role}.service": "0644",
    }
    if role == "worker":
        expected[cc.WORKER_WRAPPER] = "0755"
    else:
        expected["/etc/scherbelberg/idle_preload.py"] = "0644"
    assert modes == expected
    for entry in written.values():
        assert entry["owner"] == "root:root"
        assert set(entry) == {"path", "owner", "permissions", "content"}  # plain text, readable


@pytest.mark.parametrize("role", ROLES)
def test_ssh_host_key_only_and_no_user_keys(make_node: MakeNode, role: str) -> None:
    node = make_node(role)
    config = parsed(build_cloud_config(node))
    assert config["ssh_keys"] == {
        "ed25519_private": node.host_key_private,
        "ed25519_public": node.host_key_public,
    }
    assert config["ssh_deletekeys"] is True
    assert config["disable_root"] is False
    for key in ("ssh_authorized_keys", "users", "ssh_import_id", "ssh_genkeytypes", "chpasswd"):
        assert key not in config
    assert set(config) == {
        "ssh_keys",
        "ssh_deletekeys",
        "disable_root",
        "bootcmd",
        "write_files",
        "runcmd",
    }


# --- Dask config and services ------------------------------------------------------------------


def schema_keys(schema: dict[str, Any], config: dict[str, Any], where: str = "") -> None:
    """Every key of `config` is a property in distributed's schema."""
    for key, value in config.items():
        properties = schema.get("properties", {})
        assert key in properties, f"{where}{key} is not in distributed's config schema"
        if isinstance(value, dict):
            schema_keys(properties[key], value, f"{where}{key}.")


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.mark.parametrize("role", ROLES)
def test_dask_config_is_tls_only_for_the_role(make_node: MakeNode, role: str) -> None:
    content = files(build_cloud_config(make_node(role)))[cc.DASK_CONFIG_FILE]["content"]
    config = yaml.safe_load(content)
    assert config == {
        "distributed": {
            "comm": {
                "require-encryption": True,
                "default-scheme": "tls",
                "tls": {
                    "ca-file": "/etc/scherbelberg/tls/ca.pem",
                    role: {
                        "cert": "/etc/scherbelberg/tls/node.pem",
                        "key": "/etc/scherbelberg/tls/node-key.pem",
                    },
                },
            }
        }
    }
    schema_path = Path(distributed.__file__).parent / "distributed-schema.yaml"
    schema_keys(yaml.safe_load(schema_path.read_text()), config)
    # and Dask reads it the way we mean it
    with dask.config.set(flatten(config)):
        security = distributed.Security()
    assert security.require_encryption
    tls = security.get_tls_config_for_role(role)
    assert tls["ca_file"] == "/etc/scherbelberg/tls/ca.pem"
    assert tls["cert"] == "/etc/scherbelberg/tls/node.pem"
    assert tls["key"] == "/etc/scherbelberg/tls/node-key.pem"


def test_scheduler_service(make_node: MakeNode) -> None:
    text = build_cloud_config(make_node("scheduler", scheduler_port=9786, dashboard_port=9787))
    assert exec_start(text, "scheduler") == (
        "/opt/scherbelberg/env/bin/dask scheduler --protocol tls --host 0.0.0.0 --port 9786 "
        "--dashboard-address 127.0.0.1:9787 --preload /etc/scherbelberg/idle_preload.py"
    )
    content = unit(text, "scheduler")
    for line in (
        "Environment=DASK_CONFIG=/etc/scherbelberg/dask",
        "Restart=on-failure",
        "RestartSec=2",
        "WantedBy=multi-user.target",
        "After=network-online.target",
    ):
        assert line in content.splitlines()
    assert cc.WORKER_WRAPPER not in text
    bootstrap = files(text)[cc.BOOTSTRAP_COMMAND]["content"]
    assert "SERVICE=dask-scheduler" in bootstrap
    assert "socket.create_connection" in bootstrap and " 9786 2>/dev/null" in bootstrap


def test_worker_service(make_node: MakeNode) -> None:
    node = make_node(
        "worker",
        name="sbg-w-3",
        nthreads=4,
        memory_limit="7.5GiB",
        nworkers=2,
        extra_args=("--resources", "GPU=1 MEM=10e9", "--lifetime", "100%"),
        env=EnvSpec(method="pip", python="3.11", pins=(), prefix="/srv/env"),
    )
    text = build_cloud_config(node)
    assert exec_start(text, "worker") == (
        "/usr/local/sbin/scherbelberg-on-private-ip /srv/env/bin/dask worker "
        "tls://10.0.1.2:8786 --name sbg-w-3 --protocol tls --nworkers 2 --nthreads 4 "
        '--memory-limit 7.5GiB --no-dashboard --resources "GPU=1 MEM=10e9" --lifetime 100%%'
    )
    assert "Environment=DASK_CONFIG=/etc/scherbelberg/dask" in unit(text, "worker")
    wrapper = files(text)[cc.WORKER_WRAPPER]["content"]
    assert "/srv/env/bin/python" in wrapper and " 10.0.0.0/16)" in wrapper
    bootstrap = files(text)[cc.BOOTSTRAP_COMMAND]["content"]
    assert "SERVICE=dask-worker" in bootstrap
    assert "create_connection" not in bootstrap
    # defaults leave nthreads and memory to dask
    plain = exec_start(build_cloud_config(make_node("worker")), "worker")
    assert "--nthreads" not in plain and "--memory-limit" not in plain
    assert "--nworkers 1" in plain


@pytest.mark.parametrize(
    ("role", "changes"),
    [
        ("worker", {"scheduler_address": None}),
        ("worker", {"scheduler_address": "tcp://10.0.1.2:8786"}),
        ("worker", {"nworkers": 0}),
        ("worker", {"nthreads": 0}),
        ("worker", {"name": "bad name"}),
        ("worker", {"name": "-x"}),
        ("worker", {"private_cidr": "fd00::/64"}),
        ("worker", {"private_cidr": "10.0.0.1/16"}),
        ("scheduler", {"scheduler_port": 70000}),
        ("scheduler", {"host_key_public": "ssh-rsa AAAA"}),
        ("scheduler", {"host_key_private": "not a key"}),
        ("client", {}),
    ],
)
def test_bad_nodes_are_refused(make_node: MakeNode, role: str, changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_cloud_config(make_node(role, **changes))


# --- size and secrets --------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_size_is_well_under_the_limit(make_node: MakeNode, role: str) -> None:
    node = make_node(role, env=client_env_spec(extra_packages=["xarray>=2024", "zarr"]))
    size = len(build_cloud_config(node).encode())
    assert size < MAX_USER_DATA // 2, size


def test_size_limit_is_enforced(make_node: MakeNode) -> None:
    huge = tuple(f"package-number-{i}>=1.0" for i in range(2000))
    node = make_node(
        "worker", env=EnvSpec(method="pip", python="3.11", pins=(), extra_packages=huge)
    )
    with pytest.raises(ValueError, match="over Hetzner's limit of 32768 bytes"):
        build_cloud_config(node)


def test_no_token_and_no_client_dask_config(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "hc0FAKEtoken0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
    monkeypatch.setenv("HCLOUD_TOKEN", token)
    marker = "client-only-setting-7f3a"
    with dask.config.set({"scherbelberg-test": {"secret": marker}}):
        texts = [build_cloud_config(make_node(role)) for role in ROLES]
    for text in texts:
        assert token not in text
        assert token[:16] not in text
        assert marker not in text
        assert "HCLOUD" not in text.upper()


# --- validity: cloud-init schema and sh syntax -------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", ["pip", "conda", "preinstalled"])
def test_cloud_init_schema_accepts_it(
    make_node: MakeNode, tmp_path: Path, role: str, method: str
) -> None:
    env = client_env_spec(
        method="conda" if method == "conda" else "pip",
        extra_packages=["xarray>=2024"],
        preinstalled=method == "preinstalled",
    )
    assert_valid_cloud_config(build_cloud_config(make_node(role, env=env)), tmp_path)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", ["pip", "conda", "preinstalled"])
def test_every_script_is_valid_sh(make_node: MakeNode, role: str, method: str) -> None:
    env = client_env_spec(
        method="conda" if method == "conda" else "pip",
        extra_packages=["xarray>=2024", "odd'quote"],
        index_url="http://mirror.local/simple",
        preinstalled=method == "preinstalled",
    )
    scripts = dict(cc.shell_scripts(build_cloud_config(make_node(role, env=env))))
    expected = {cc.BOOTSTRAP_COMMAND, WAIT_COMMAND} | (
        {cc.WORKER_WRAPPER} if role == "worker" else set()
    )
    assert set(scripts) == expected
    for path, script in scripts.items():
        for shell in ("sh", "bash"):
            result = subprocess.run([shell, "-n"], input=script, capture_output=True, text=True)
            assert result.returncode == 0, f"{path} ({shell}): {result.stderr}"


# --- the scripts, run here with their paths moved to a temporary directory ---------------------


class Sandbox:
    """Runs a node script with STATE_DIR, LOG_FILE and the TLS dir moved below `root`, and
    stubs for systemctl and journalctl (and `ip`) on PATH."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.log = root / "log" / "bootstrap.log"
        (root / "tls").mkdir(parents=True)
        self.bin = root / "bin"
        self.bin.mkdir()
        self.calls = root / "calls"
        self.env = {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "STUB_CALLS": str(self.calls),
            "STUB_STATE": str(self.state),
        }

    def stub(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >>"$STUB_CALLS"\n{body}\n')
        path.chmod(0o755)

    def localize(self, script: str) -> str:
        return (
            script.replace(cc.STATE_DIR, str(self.state))
            .replace(cc.LOG_FILE, str(self.log))
            .replace(cc.TLS_DIR, str(self.root / "tls"))
        )

    def run(self, script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        path = self.root / "script"
        path.write_text(self.localize(script))
        return subprocess.run(
            ["sh", str(path), *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )

    def read(self, name: str) -> str:
        return (self.state / name).read_text()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path)
    box.stub("journalctl", 'echo "journal of the service"')
    yield box


def this_env(**changes: Any) -> EnvSpec:
    """The test's own environment, as a preinstalled env: the check runs for real."""
    client = client_env_spec(preinstalled=True)
    return replace(client, prefix=sys.prefix, **changes)


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def bootstrap_of(node: NodeConfig) -> str:
    return str(files(build_cloud_config(node))[cc.BOOTSTRAP_COMMAND]["content"])


def test_bootstrap_scheduler_becomes_ready(
    make_node: MakeNode, sandbox: Sandbox, listener: int
) -> None:
    sandbox.stub(
        "systemctl",
        "case $1 in show) echo 0 ;; is-active) echo active ;; esac",
    )
    node = make_node("scheduler", env=this_env(), scheduler_port=listener)
    result = sandbox.run(bootstrap_of(node))
    assert result.returncode == 0, sandbox.log.read_text()
    assert (sandbox.state / "ready").exists()
    assert not (sandbox.state / "failed").exists()
    assert sandbox.read("stage") == "dask\n"
    log = sandbox.log.read_text()
    assert "stage environment" in log and "stage dask" in log
    assert "the environment matches the client" in log
    assert log.rstrip().endswith("ready")
    calls = sandbox.calls.read_text().splitlines()
    assert "systemctl daemon-reload" in calls
    assert "systemctl enable dask-scheduler" in calls
    assert "systemctl restart dask-scheduler" in calls
    assert oct((sandbox.root / "tls").stat().st_mode & 0o777) == "0o700"
    assert result.stdout == result.stderr == ""  # everything went to the log


def test_bootstrap_failure_names_the_step_and_the_error(
    make_node: MakeNode, sandbox: Sandbox
) -> None:
    sandbox.stub("systemctl", "exit 0")
    node = make_node("worker", env=this_env(pins=(("dask", "1999.1.0"),)))
    result = sandbox.run(bootstrap_of(node))
    assert result.returncode == 1
    assert not (sandbox.state / "ready").exists()
    failed = sandbox.read("failed")
    assert failed.startswith("environment: exit 1: the environment does not match the client:")
    assert "dask" in failed and "1999.1.0" in failed
    assert sandbox.read("stage") == "environment\n"
    assert "bootstrap failed in step environment" in result.stderr  # on cloud-init's output
    assert not sandbox.calls.exists()  # no service was touched


def test_bootstrap_scheduler_that_crashes_fails(
    make_node: MakeNode, sandbox: Sandbox, listener: int
) -> None:
    # started once (NRestarts 0 before), then restarting; the port never answers
    sandbox.stub(
        "systemctl",
        'case $1 in show) [ -e "$STUB_STATE/started" ] && echo 1 || echo 0 ;;\n'
        '  restart) touch "$STUB_STATE/started" ;; is-active) echo activating ;; esac',
    )
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    node = make_node("scheduler", env=this_env(), scheduler_port=port)
    result = sandbox.run(bootstrap_of(node))
    assert result.returncode == 1
    failed = sandbox.read("failed")
    assert failed.startswith("dask: exit 1: dask-scheduler is activating and restarted 1 times")
    assert "journal of the service" in sandbox.log.read_text()


def test_bootstrap_worker_is_ready_once_it_runs_on_its_address(
    make_node: MakeNode, sandbox: Sandbox
) -> None:
    sandbox.stub(
        "systemctl",
        "case $1 in show) echo 0 ;; is-active) echo active ;;\n"
        '  restart) echo 10.0.7.9 >"$STUB_STATE/host" ;; esac',
    )
    node = make_node("worker", env=this_env())
    script = bootstrap_of(node).replace(f"sleep {cc.WORKER_STABLE_SECONDS}\n", "sleep 0\n")
    result = sandbox.run(script)
    assert result.returncode == 0, sandbox.log.read_text()
    assert (sandbox.state / "ready").exists()
    assert "systemctl restart dask-worker" in sandbox.calls.read_text()


IP_OUTPUT = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 198.18.0.17/32 scope global eth0\\       valid_lft forever preferred_lft forever
3: ens10    inet 10.0.3.4/32 brd 10.0.3.4 scope global dynamic ens10\\       valid_lft 86000sec
"""


def test_worker_wrapper_runs_dask_on_the_private_address(
    make_node: MakeNode, sandbox: Sandbox
) -> None:
    sandbox.stub("ip", f"cat <<'EOF'\n{IP_OUTPUT}EOF")
    node = make_node("worker", env=this_env())
    wrapper = files(build_cloud_config(node))[cc.WORKER_WRAPPER]["content"]
    sandbox.state.mkdir()
    result = sandbox.run(wrapper, "echo", "worker", "tls://10.0.1.2:8786", "--name", "w 1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "worker --host 10.0.3.4 --dashboard-address 10.0.3.4:0 tls://10.0.1.2:8786 --name w 1\n"
    )
    assert sandbox.read("host") == "10.0.3.4\n"


def test_worker_wrapper_gives_up_without_a_private_address(
    make_node: MakeNode, sandbox: Sandbox
) -> None:
    sandbox.stub("ip", "echo '2: eth0    inet 198.18.0.17/32 scope global eth0'")
    node = make_node("worker", env=this_env(), private_cidr="192.168.0.0/24")
    wrapper = files(build_cloud_config(node))[cc.WORKER_WRAPPER]["content"]
    wrapper = wrapper.replace(f"-ge {cc.WORKER_ADDRESS_SECONDS} ]", "-ge 2 ]")
    result = sandbox.run(wrapper, "echo", "worker")
    assert result.returncode == 1
    assert "no IPv4 address in 192.168.0.0/24" in result.stderr
    assert result.stdout == ""


# --- the wait helper ---------------------------------------------------------------------------


@pytest.fixture
def wait(make_node: MakeNode) -> str:
    return str(files(build_cloud_config(make_node("worker")))[WAIT_COMMAND]["content"])


def test_wait_ready(sandbox: Sandbox, wait: str) -> None:
    sandbox.state.mkdir()
    (sandbox.state / "ready").touch()
    result = sandbox.run(wait, "5")
    assert result.returncode == 0
    assert result.stdout == ""


def test_wait_failed_prints_the_reason_log_and_journal(sandbox: Sandbox, wait: str) -> None:
    sandbox.state.mkdir()
    sandbox.log.parent.mkdir()
    sandbox.log.write_text("".join(f"line {i}\n" for i in range(100)))
    (sandbox.state / "failed").write_text("environment: exit 1: no python\n")
    result = sandbox.run(wait, "5")
    assert result.returncode == 1
    out = result.stdout
    assert "bootstrap failed: environment: exit 1: no python" in out
    assert "line 99" in out and "line 60" in out and "line 59" not in out
    assert "journal of the service" in out
    assert "journalctl -u dask-worker -n 40 --no-pager" in sandbox.calls.read_text()


def test_wait_times_out_with_the_stage(sandbox: Sandbox, wait: str) -> None:
    sandbox.state.mkdir()
    (sandbox.state / "stage").write_text("environment\n")
    result = sandbox.run(wait, "1")
    assert result.returncode == 2
    assert "not ready after 1 s, at stage: environment" in result.stdout
    not_started = Sandbox(sandbox.root / "again")
    result = not_started.run(wait, "0")
    assert result.returncode == 2
    assert "at stage: not started" in result.stdout


@pytest.mark.parametrize("args", [(), ("soon",), ("-1",)])
def test_wait_usage(sandbox: Sandbox, wait: str, args: tuple[str, ...]) -> None:
    result = sandbox.run(wait, *args)
    assert result.returncode == 64
    assert "usage: scherbelberg-wait SECONDS" in result.stderr


# --- the generated config and command lines, run here: a real TLS cluster ---------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        assert process.poll() is None, "the scheduler exited"
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port}")


async def identity_over_plain_tcp(port: int) -> dict[str, Any]:
    """One Dask `identity` request to 127.0.0.1:`port` without TLS."""
    comm = await TCPConnector().connect(f"127.0.0.1:{port}", deserialize=True)
    try:
        await comm.write({"op": "identity"})
        return dict(await comm.read())
    finally:
        comm.abort()


def test_scheduler_and_worker_as_generated_form_a_tls_cluster(
    make_node: MakeNode, sandbox: Sandbox
) -> None:
    """The Dask config, unit ExecStart lines and worker wrapper of two cloud-configs, run here
    (paths moved to a temporary directory, loopback as the "private network")."""
    port = free_port()
    common: dict[str, Any] = {
        "env": this_env(),
        "private_cidr": "127.0.0.0/8",
        "scheduler_port": port,
        "dashboard_port": free_port(),
    }
    scheduler = make_node("scheduler", **common)
    worker = make_node(
        "worker", scheduler_address=f"tls://127.0.0.1:{port}", nworkers=2, nthreads=1, **common
    )
    sandbox.stub("ip", "echo '1: lo    inet 127.0.0.1/8 scope host lo'")
    sandbox.state.mkdir()
    etc = sandbox.root / "etc"
    run = sandbox.root / "run"
    env = {**sandbox.env, "DASK_CONFIG": str(etc / "dask")}
    processes = []
    try:
        for node in (scheduler, worker):
            written = files(build_cloud_config(node))
            for path, entry in written.items():
                if path.startswith("/etc/scherbelberg/"):
                    target = etc / path.removeprefix("/etc/scherbelberg/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    content = entry["content"].replace("/etc/scherbelberg", str(etc))
                    target.write_text(content.replace("/run/scherbelberg", str(run)))
            command = exec_start(build_cloud_config(node), node.role).replace("%%", "%")
            argv = shlex.split(command.replace("/etc/scherbelberg", str(etc)))
            if node.role == "worker":
                wrapper = sandbox.root / "wrapper"
                wrapper.write_text(sandbox.localize(written[cc.WORKER_WRAPPER]["content"]))
                wrapper.chmod(0o755)
                argv[0] = str(wrapper)
            log = (sandbox.root / f"{node.role}.log").open("wb")
            processes.append(subprocess.Popen(argv, env=env, stdout=log, stderr=log))
            if node.role == "scheduler":
                wait_for_port(port, processes[0])
        security = distributed.Security(
            tls_ca_file=str(etc / "tls/ca.pem"),
            tls_client_cert=str(etc / "tls/node.pem"),
            tls_client_key=str(etc / "tls/node-key.pem"),
            require_encryption=True,
        )
        with distributed.Client(f"tls://127.0.0.1:{port}", security=security, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
            workers = c.scheduler_info()["workers"]
            assert sorted(w["name"] for w in workers.values()) == [
                f"{worker.name}-0",
                f"{worker.name}-1",
            ]
            assert all(address.startswith("tls://127.0.0.1:") for address in workers)
            assert c.submit(sum, [1, 2, 3]).result() == 6
            # the idle preload answers: one client connected, so not idle. The scheduler
            # notices that its tasks are done on its own periodic check: wait for it.
            deadline = time.monotonic() + 30
            while (idle := c.sync(c.scheduler.scherbelberg_idle))["busy"]:
                assert time.monotonic() < deadline, idle
                time.sleep(0.2)
            assert idle["clients"] == 1, idle
            assert idle["idle_for"] is not None and idle["idle_for"] < 1.0, idle
        assert sandbox.read("host") == "127.0.0.1\n"
        # Dask over plain TCP is refused: the TLS listener drops the connection at the first
        # message (distributed's connect() would retry that until its timeout: one attempt here)
        with pytest.raises(CommClosedError):
            asyncio.run(identity_over_plain_tcp(port))
    finally:
        # workers first, while their scheduler still answers: they leave at once (stopped
        # after it, each would try to reach it for seconds before giving up)
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)
