"""A node's whole bootstrap as one #cloud-config: Hetzner user_data, built as data.

Why: a scheduler or worker server gets nothing but its user_data; no provisioning over SSH.
So the cloud-config carries everything the node needs: the SSH host key the client pins, TLS
files, Dask's TLS config, the environment install, a systemd unit, and a small protocol the
client can poll over SSH:

- `STATE_DIR/stage` holds the bootstrap step in progress (`environment`, `dask`),
- `STATE_DIR/ready` appears when the service is up, `STATE_DIR/failed` (with the failing step
  and error) when anything failed; `LOG_FILE` has the full output,
- `WAIT_COMMAND SECONDS` waits for either and exits 0 (ready), 1 (failed: prints the log and
  journal tails) or 2 (timeout: prints the stage and the log tail),
- a worker writes the private address it listens on to `HOST_FILE`.

The YAML is made by `yaml` from dicts (never from text templates); the shell scripts inside it
are text, with every value from the caller shell-quoted.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from scherbelberg.bootstrap.env import EnvSpec, install_script
from scherbelberg.bootstrap.idle import IDLE_PRELOAD, IDLE_PRELOAD_FILE

from ..errors import ConfigError

MAX_USER_DATA = 32 * 1024  # Hetzner's limit for user_data, in bytes

STATE_DIR = "/var/lib/scherbelberg"
LOG_FILE = "/var/log/scherbelberg/bootstrap.log"
WAIT_COMMAND = "/usr/local/bin/scherbelberg-wait"
BOOTSTRAP_COMMAND = "/usr/local/sbin/scherbelberg-bootstrap"
WORKER_WRAPPER = "/usr/local/sbin/scherbelberg-on-private-ip"
HOST_FILE = f"{STATE_DIR}/host"
TLS_DIR = "/etc/scherbelberg/tls"
CA_FILE = f"{TLS_DIR}/ca.pem"
CERT_FILE = f"{TLS_DIR}/node.pem"
KEY_FILE = f"{TLS_DIR}/node-key.pem"
DASK_CONFIG_DIR = "/etc/scherbelberg/dask"
DASK_CONFIG_FILE = f"{DASK_CONFIG_DIR}/scherbelberg.yaml"

SCHEDULER_READY_SECONDS = 180  # until the scheduler answers on its port
WORKER_ADDRESS_SECONDS = 180  # the wrapper waits this long for the private address
# Hetzner's images try DHCP on a private NIC once (hc-utils: `dhclient -1`, 60 s) and never
# again (hetzner-reality.md): without an address after this long, the wrapper asks DHCP itself,
# on every private NIC (MAC 86:00:00:..) without an IPv4 address, and again after each try
WORKER_DHCP_RETRY_SECONDS = 10
WORKER_DHCP_TRY_SECONDS = 70  # one try: dhclient's own timeout (60 s) and a margin
PRIVATE_MAC_PREFIX = "86:00:00:"
WORKER_STABLE_SECONDS = 3  # a started worker must stay up this long (crashes come sooner)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")
_SYSTEMD_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")

Role = Literal["scheduler", "worker"]


@dataclass(frozen=True)
class NodeTls:
    """PEM texts: the cluster CA, this node's certificate and its private key."""

    ca_pem: str
    cert_pem: str
    key_pem: str


@dataclass(frozen=True)
class NodeConfig:
    """Everything one server needs to become a scheduler or a worker of the cluster."""

    role: Role
    name: str
    env: EnvSpec
    tls: NodeTls
    host_key_private: str
    host_key_public: str
    private_cidr: str
    scheduler_port: int = 8786
    dashboard_port: int = 8787
    scheduler_address: str | None = None
    nthreads: int | None = None
    memory_limit: str | None = None
    nworkers: int = 1
    extra_args: tuple[str, ...] = ()


def service_name(role: Role) -> str:
    """The systemd service of a node with this role (without `.service`)."""
    if role not in ("scheduler", "worker"):
        raise ConfigError(f"unknown role {role!r}")
    return f"dask-{role}"


def build_cloud_config(node: NodeConfig) -> str:
    """The node's user_data: `#cloud-config` and YAML; ValueError if over `MAX_USER_DATA`."""
    _validate(node)
    service = service_name(node.role)
    files: list[dict[str, Any]] = [
        _file(CA_FILE, node.tls.ca_pem, "0644"),
        _file(CERT_FILE, node.tls.cert_pem, "0644"),
        _file(KEY_FILE, node.tls.key_pem, "0600"),
        _file(DASK_CONFIG_FILE, dask_config(node.role), "0644"),
        _file(BOOTSTRAP_COMMAND, bootstrap_script(node), "0700"),
        _file(WAIT_COMMAND, wait_script(node.role), "0755"),
        _file(f"/etc/systemd/system/{service}.service", systemd_unit(node), "0644"),
    ]
    if node.role == "worker":
        files.append(_file(WORKER_WRAPPER, worker_wrapper(node), "0755"))
    else:
        files.append(_file(IDLE_PRELOAD_FILE, IDLE_PRELOAD, "0644"))
    config: dict[str, Any] = {
        # The client made this host key and pins it: no other host keys, none generated.
        # (`ssh_genkeytypes` is left out: cloud-init ignores it when `ssh_keys` is given, and
        # its schema rejects an empty list.)
        "ssh_keys": {
            "ed25519_private": _with_newline(node.host_key_private),
            "ed25519_public": node.host_key_public.strip(),
        },
        "ssh_deletekeys": True,
        "disable_root": False,
        # bootcmd runs before write_files: the key's directory exists, private, before the key.
        "bootcmd": [["install", "-d", "-m", "0700", "-o", "root", "-g", "root", TLS_DIR]],
        "write_files": files,
        "runcmd": [[BOOTSTRAP_COMMAND]],
    }
    return _render(config, f"for {node.name}", "long extra_packages or extra_args?")


def _render(config: dict[str, Any], whose: str, hint: str) -> str:
    """The cloud-config as YAML text, refused if over Hetzner's user_data limit."""
    text = "#cloud-config\n" + yaml.dump(
        config, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=False
    )
    size = len(text.encode())
    if size > MAX_USER_DATA:
        raise ConfigError(
            f"user_data {whose} is {size} bytes, over Hetzner's limit of "
            f"{MAX_USER_DATA} bytes ({hint})"
        )
    return text


# --- pieces of the cloud-config ----------------------------------------------------------------


def dask_config(role: Role) -> str:
    """Dask config for this node: TLS everywhere, with the node's certificate for its role."""
    service_name(role)  # validates the role
    config = {
        "distributed": {
            "comm": {
                "require-encryption": True,
                "default-scheme": "tls",
                "tls": {
                    "ca-file": CA_FILE,
                    role: {"cert": CERT_FILE, "key": KEY_FILE},
                },
            }
        }
    }
    return yaml.safe_dump(config, sort_keys=False)


def dask_command(node: NodeConfig) -> list[str]:
    """The `dask scheduler` / `dask worker` command line (a worker's `--host` comes later)."""
    dask = f"{node.env.prefix.rstrip('/')}/bin/dask"
    if node.role == "scheduler":
        return [
            dask,
            "scheduler",
            "--protocol",
            "tls",
            "--host",
            "0.0.0.0",
            "--port",
            str(node.scheduler_port),
            # only through an SSH tunnel
            "--dashboard-address",
            f"127.0.0.1:{node.dashboard_port}",
            # how long the scheduler has been idle, for idle_timeout (bootstrap/idle.py)
            "--preload",
            IDLE_PRELOAD_FILE,
            *node.extra_args,
        ]
    assert node.scheduler_address is not None  # _validate
    command = [
        dask,
        "worker",
        node.scheduler_address,
        "--name",
        node.name,
        "--protocol",
        "tls",
        "--nworkers",
        str(node.nworkers),
    ]
    if node.nthreads is not None:
        command += ["--nthreads", str(node.nthreads)]
    if node.memory_limit is not None:
        command += ["--memory-limit", node.memory_limit]
    return [*command, "--no-dashboard", *node.extra_args]


def systemd_unit(node: NodeConfig) -> str:
    command = dask_command(node)
    if node.role == "worker":
        command = [WORKER_WRAPPER, *command]
    return f"""\
[Unit]
Description=Dask {node.role} {node.name} (scherbelberg)
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Environment=DASK_CONFIG={DASK_CONFIG_DIR}
ExecStart={" ".join(_systemd_word(word) for word in command)}
Restart=on-failure
RestartSec=2
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"""


# Prints the first IPv4 address of this host inside the network argv[1], from `ip -4 -o addr`.
_FIND_ADDRESS_PY = """\
import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1])
for line in sys.stdin:
    ip = ipaddress.ip_interface(line.split()[3]).ip
    if ip in net:
        print(ip)
        break
"""


def worker_wrapper(node: NodeConfig) -> str:
    """ExecStart wrapper: wait for the address in the private network, then run the command
    with `--host <address>` (and its HTTP server on that address) after its first two words
    (`.../dask worker`): nothing of Dask's listens on the public side.

    The address is found by network, not by interface name (Hetzner names the NIC `ens10`,
    `enp7s0`, ... by server type). A failed DHCP try is retried here (the image does not): a
    transient unit per NIC (`systemd-run`, so the DHCP client outlives the worker's service and
    keeps renewing its lease), every WORKER_DHCP_TRY_SECONDS until the deadline; each retry is
    logged to the service's journal."""
    python = f"{node.env.prefix.rstrip('/')}/bin/python"
    cidr = _q(node.private_cidr)
    return f"""\
#!/bin/sh
# scherbelberg: run "$@" on this node's address in the private network {node.private_cidr}
set -eu
dhcp_again() {{
  ip -o link show | while read -r _ nic rest; do
    nic=${{nic%:}}
    nic=${{nic%@*}}
    case $rest in *" link/ether {PRIVATE_MAC_PREFIX}"*) ;; *) continue ;; esac
    [ -z "$(ip -4 -o addr show dev "$nic")" ] || continue
    echo "scherbelberg: no address in {node.private_cidr} after $i s: DHCP again on $nic" >&2
    unit=scherbelberg-dhcp-$nic
    systemctl stop "$unit.service" 2>/dev/null || true
    if command -v dhclient >/dev/null; then
      set -- dhclient -1 -4 -v -pf "/run/$unit.pid" -lf "/var/lib/dhcp/dhclient.$nic.leases" "$nic"
    elif command -v dhcpcd >/dev/null; then
      set -- dhcpcd -1 -4 "$nic"
    else
      echo "scherbelberg: no DHCP client (dhclient, dhcpcd) for $nic" >&2
      continue
    fi
    systemd-run --quiet --collect --unit="$unit" -p RemainAfterExit=yes "$@" </dev/null >&2 ||
      echo "scherbelberg: could not start DHCP on $nic" >&2
  done
}}
i=0
while :; do
  IP=$(ip -4 -o addr show | {_q(python)} -c {_q(_FIND_ADDRESS_PY)} {cidr}) || IP=
  [ -z "$IP" ] || break
  i=$((i + 1))
  if [ "$i" -ge {WORKER_ADDRESS_SECONDS} ]; then
    echo "scherbelberg: error: no IPv4 address in {node.private_cidr} after \
{WORKER_ADDRESS_SECONDS} s" >&2
    exit 1
  fi
  if [ "$i" -ge {WORKER_DHCP_RETRY_SECONDS} ] &&
    [ $(((i - {WORKER_DHCP_RETRY_SECONDS}) % {WORKER_DHCP_TRY_SECONDS})) -eq 0 ]; then
    (dhcp_again) || true
  fi
  sleep 1
done
echo "$IP" >{_q(HOST_FILE)}
program=$1 subcommand=$2
shift 2
# the worker's HTTP server (health, metrics) too: on the private address, not 0.0.0.0
exec "$program" "$subcommand" --host "$IP" --dashboard-address "$IP:0" "$@"
"""


# The start of both bootstrap scripts (node and environment image): log everything, record
# the step in progress, and on any failure write `STATE_DIR/failed` with the step and reason.
def _preamble() -> str:
    return f"""\
set -eu
umask 022
S={_q(STATE_DIR)}
L={_q(LOG_FILE)}
mkdir -p "$S" "${{L%/*}}"
rm -f "$S/ready" "$S/failed"
touch "$L"
N=$(wc -l <"$L")
exec 3>&2 >>"$L" 2>&1
STEP=start
finish() {{
  rc=$?
  set +e
  [ "$rc" -ne 0 ] || return 0
  why=$(tail -n "+$((N + 1))" "$L" | sed -n 's/^scherbelberg: error: //p' | tail -n 1)
  echo "$STEP: exit $rc${{why:+: $why}}" >"$S/failed"
  echo "scherbelberg: bootstrap failed in step $STEP (exit $rc)${{why:+: $why}}"
  echo "scherbelberg: bootstrap failed in step $STEP (exit $rc), see $L" >&3
}}
trap finish EXIT
trap 'exit 143' HUP INT TERM
stage() {{
  STEP=$1
  echo "$1" >"$S/stage"
  echo "scherbelberg: $(date -u '+%Y-%m-%d %H:%M:%S') stage $1"
}}
"""


def bootstrap_script(node: NodeConfig) -> str:
    """The script cloud-init runs once: environment, then the service; state in STATE_DIR."""
    service = service_name(node.role)
    python = _q(f"{node.env.prefix.rstrip('/')}/bin/python")
    if node.role == "scheduler":
        port = node.scheduler_port
        probe = 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2)'
        start = f"""\
i=0
until {python} -c {_q(probe)} {port} 2>/dev/null; do
  i=$((i + 1))
  [ "$i" -lt {SCHEDULER_READY_SECONDS} ] \\
    || fail "the scheduler does not answer on port {port} after {SCHEDULER_READY_SECONDS} s"
  alive
  sleep 1
done
"""
    else:
        start = f"""\
i=0
until [ -s {_q(HOST_FILE)} ]; do
  i=$((i + 1))
  [ "$i" -lt {WORKER_ADDRESS_SECONDS + 30} ] \\
    || fail "the worker found no address in {node.private_cidr}"
  alive
  sleep 1
done
sleep {WORKER_STABLE_SECONDS}
alive
"""
    return f"""\
#!/bin/sh
# scherbelberg bootstrap of {node.role} {node.name}: the Python environment, then {service}.
# cloud-init runs it once; it can run again by hand. Everything goes to {LOG_FILE}.
{_preamble()}SERVICE={service}
die() {{ echo "scherbelberg: error: $*" >&2; exit 1; }}
fail() {{ journalctl -u "$SERVICE" -n 40 --no-pager || true; die "$@"; }}
restarts() {{ systemctl show -p NRestarts --value "$SERVICE"; }}
alive() {{
  state=$(systemctl is-active "$SERVICE" || true)
  if [ "$state" != active ] || [ "$(restarts)" != "$R" ]; then
    fail "$SERVICE is $state and restarted $(($(restarts) - R)) times since its start"
  fi
}}

stage environment
(
{install_script(node.env)})

stage dask
chmod 0700 {_q(TLS_DIR)}
systemctl daemon-reload
systemctl enable "$SERVICE"
rm -f {_q(HOST_FILE)}
R=$(restarts)
systemctl restart "$SERVICE"
{start}
touch "$S/ready"
echo "scherbelberg: $(date -u '+%Y-%m-%d %H:%M:%S') ready"
"""


def wait_script(role: Role) -> str:
    """`scherbelberg-wait SECONDS`: 0 ready, 1 failed, 2 timeout; diagnostics on stdout."""
    service = service_name(role)
    return f"""\
#!/bin/sh
# usage: scherbelberg-wait SECONDS -- wait for the scherbelberg bootstrap of this node.
# Exit 0: ready. 1: failed (prints why, and log and journal tails). 2: timeout. 64: usage.
set -u
S={_q(STATE_DIR)}
L={_q(LOG_FILE)}
case ${{1:-}} in
  ''|*[!0-9]*) echo "usage: scherbelberg-wait SECONDS" >&2; exit 64 ;;
esac
end=$(($(date +%s) + $1))
while :; do
  [ ! -e "$S/ready" ] || exit 0
  if [ -e "$S/failed" ]; then
    echo "scherbelberg: bootstrap failed: $(cat "$S/failed")"
    echo "--- last 40 lines of $L"
    tail -n 40 "$L"
    echo "--- journalctl -u {service} -n 40"
    journalctl -u {service} -n 40 --no-pager
    exit 1
  fi
  if [ "$(date +%s)" -ge "$end" ]; then
    echo "scherbelberg: not ready after $1 s, at stage: $(cat "$S/stage" 2>/dev/null || \
echo 'not started')"
    echo "--- last 40 lines of $L"
    tail -n 40 "$L" 2>/dev/null
    exit 2
  fi
  sleep 1
done
"""


# --- helpers -----------------------------------------------------------------------------------


def _validate(node: NodeConfig) -> None:
    service_name(node.role)
    if not _NAME.match(node.name):
        raise ConfigError(f"server name must be a host name: {node.name!r}")
    network = ipaddress.ip_network(node.private_cidr)  # ValueError if not a network
    if network.version != 4:
        raise ConfigError(f"private_cidr must be an IPv4 network: {node.private_cidr!r}")
    for port in (node.scheduler_port, node.dashboard_port):
        if not 0 < port < 65536:
            raise ConfigError(f"bad port {port}")
    if node.role == "worker":
        if node.scheduler_address is None or not node.scheduler_address.startswith("tls://"):
            raise ConfigError(
                f"a worker needs a tls:// scheduler_address, got {node.scheduler_address!r}"
            )
        if node.nworkers < 1 or (node.nthreads is not None and node.nthreads < 1):
            raise ConfigError("nworkers and nthreads must be at least 1")
    if not node.host_key_public.startswith("ssh-ed25519 "):
        raise ConfigError("host_key_public must be an ssh-ed25519 public key")
    if "BEGIN OPENSSH PRIVATE KEY" not in node.host_key_private:
        raise ConfigError("host_key_private must be an OpenSSH-format private key")
    for what, pem in (("ca", node.tls.ca_pem), ("cert", node.tls.cert_pem)):
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise ConfigError(f"tls.{what}_pem is not a PEM certificate")
    if "PRIVATE KEY-----" not in node.tls.key_pem:
        raise ConfigError("tls.key_pem is not a PEM private key")


def _file(path: str, content: str, permissions: str) -> dict[str, Any]:
    return {
        "path": path,
        "owner": "root:root",
        "permissions": permissions,
        "content": _with_newline(content),
    }


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _q(word: str) -> str:
    return shlex.quote(word)


def _systemd_word(word: str) -> str:
    """One ExecStart argument, quoted for systemd: `%` and `$` are specifiers there."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if _SYSTEMD_PLAIN.match(word):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings (scripts, PEMs) as readable `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def shell_scripts(config_text: str) -> Iterable[tuple[str, str]]:
    """(path, content) of every shell script in a built cloud-config (for checks and tests)."""
    config = yaml.safe_load(config_text)
    for entry in config["write_files"]:
        if entry["content"].startswith("#!/bin/sh"):
            yield entry["path"], entry["content"]


# --- environment images --------------------------------------------------------------------------


def build_image_config(env: EnvSpec, host_key_private: str, host_key_public: str) -> str:
    """user_data of a temporary server that only installs `env` (for an environment image).

    The same state, log and wait helper as a node, so the client waits for it the same way;
    but no TLS material, no Dask config and no service: the server only installs the
    environment, checks it and touches `STATE_DIR/ready`.
    """
    if env.preinstalled:
        raise ConfigError("an environment image needs an install, not a preinstalled env")
    if not host_key_public.startswith("ssh-ed25519 "):
        raise ConfigError("host_key_public must be an ssh-ed25519 public key")
    if "BEGIN OPENSSH PRIVATE KEY" not in host_key_private:
        raise ConfigError("host_key_private must be an OpenSSH-format private key")
    config: dict[str, Any] = {
        "ssh_keys": {
            "ed25519_private": _with_newline(host_key_private),
            "ed25519_public": host_key_public.strip(),
        },
        "ssh_deletekeys": True,
        "disable_root": False,
        "write_files": [
            _file(BOOTSTRAP_COMMAND, image_bootstrap_script(env), "0700"),
            _file(WAIT_COMMAND, image_wait_script(), "0755"),
        ],
        "runcmd": [[BOOTSTRAP_COMMAND]],
    }
    return _render(config, "of the image builder", "long extra_packages?")


def image_bootstrap_script(env: EnvSpec) -> str:
    """The image builder's bootstrap: the `environment` step only, with the node protocol."""
    return f"""\
#!/bin/sh
# scherbelberg environment image: install the Python environment, nothing else.
# Everything goes to {LOG_FILE}.
{_preamble()}
stage environment
(
{install_script(env)})

touch "$S/ready"
echo "scherbelberg: $(date -u '+%Y-%m-%d %H:%M:%S') ready"
"""


def image_wait_script() -> str:
    """`scherbelberg-wait` for the image builder: as a node's, without a service journal."""
    script = wait_script("worker")
    journal = (
        '    echo "--- journalctl -u dask-worker -n 40"\n'
        "    journalctl -u dask-worker -n 40 --no-pager\n"
    )
    assert journal in script
    return script.replace(journal, "")
