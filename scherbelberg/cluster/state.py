"""What scherbelberg remembers about each cluster, on this machine only.

Why: a cluster outlives the command that created it. Its resource IDs, addresses, pinned SSH
host keys, SSH key and TLS authority are kept in the user's data directory (never the
working directory, where they would end up in a git repository), one private directory per
cluster. The API token is deliberately not part of the state: it stays in the environment.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import string
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from ..errors import ClusterNotFound, ConfigError, StateError
from .ssh import known_hosts_text
from .tls import CertKey, ClusterCA, TlsFiles, private_directory, write_private, write_tls_files

STATE_VERSION = 1
STATE_FILE = "state.json"
MAX_NAME_LENGTH = 40  # "<name>-worker-123…" must stay a valid 63-character hostname
_NAME = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?")
_SERVER_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


def state_root() -> Path:
    """``$SCHERBELBERG_STATE_DIR``, or ``clusters`` in the user's data directory."""
    override = os.environ.get("SCHERBELBERG_STATE_DIR")
    if override:
        return Path(override)
    return platformdirs.user_data_path("scherbelberg") / "clusters"


def validate_cluster_name(name: str) -> str:
    """Return ``name`` if it is safe as a directory name, a Hetzner name and a hostname part.

    A lowercase letter first (hcloud tools read all-digit names as IDs), then lowercase
    letters, digits and inner hyphens, at most 40 characters.
    """
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise ConfigError(
            f"invalid cluster name {name!r}: use 1-{MAX_NAME_LENGTH} lowercase letters, digits "
            "and hyphens, starting with a letter and not ending with a hyphen"
        )
    return name


def generate_cluster_name() -> str:
    """A random, valid cluster name such as ``sbg-k3x9q0``."""
    alphabet = string.ascii_lowercase + string.digits
    return "sbg-" + "".join(secrets.choice(alphabet) for _ in range(6))


def _refuse_token(text: str) -> None:
    """Defence in depth: the API token must never reach the disk through the state."""
    token = os.environ.get("HCLOUD_TOKEN", "")
    if len(token) >= 16 and token in text:
        raise StateError("refusing to save cluster state that contains the HCLOUD_TOKEN value")


@dataclass
class ClusterState:
    """Everything needed to find, reach and delete a cluster again."""

    name: str
    endpoint: str  # the API endpoint the cluster lives on (never the token!)
    created: float
    location: str
    labels: dict[str, str]
    network_id: int | None = None
    firewall_id: int | None = None
    ssh_key_id: int | None = None
    placement_group_ids: list[int] = field(default_factory=list)
    scheduler: dict[str, Any] | None = None  # {"server_id", "name", "public_ip", "private_ip"}
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> same shape
    settings: dict[str, Any] = field(default_factory=dict)  # server types, image, env, ...

    def __post_init__(self) -> None:
        validate_cluster_name(self.name)

    # -- the state file ---------------------------------------------------------------

    @property
    def directory(self) -> Path:
        return state_root() / self.name

    def _private_dir(self, *parts: str) -> Path:
        """The cluster directory (or a subdirectory of it), every level created 0700 — the
        state root too, so that other local users do not even see cluster names."""
        private_directory(state_root())
        path = private_directory(self.directory)
        for part in parts:
            path = private_directory(path / part)
        return path

    def to_json(self) -> str:
        return json.dumps({"version": STATE_VERSION, **asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClusterState:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise StateError("cluster state is not a JSON object")
        version = data.pop("version", None)
        if version != STATE_VERSION:
            raise StateError(f"cluster state version {version!r} is not {STATE_VERSION}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StateError(f"unknown fields in cluster state: {', '.join(unknown)}")
        return cls(**data)

    def save(self) -> None:
        """Write ``state.json`` atomically (temporary file, then rename), mode 0600."""
        text = self.to_json()
        _refuse_token(text)
        write_private(self._private_dir() / STATE_FILE, text + "\n")

    @classmethod
    def load(cls, name: str) -> ClusterState:
        validate_cluster_name(name)
        path = state_root() / name / STATE_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ClusterNotFound(name, str(state_root())) from None
        try:
            state = cls.from_json(text)
        except (ValueError, TypeError) as exc:
            raise StateError(f"corrupt cluster state {path}: {exc}") from exc
        if state.name != name:
            raise StateError(f"corrupt cluster state {path}: it names cluster {state.name!r}")
        return state

    @classmethod
    def list_names(cls) -> list[str]:
        """Names of all clusters with a state file, sorted."""
        root = state_root()
        if not root.is_dir():
            return []
        return sorted(
            p.name for p in root.iterdir() if _NAME.fullmatch(p.name) and (p / STATE_FILE).is_file()
        )

    def delete(self) -> None:
        """Forget the cluster: remove its directory with all keys and certificates."""
        if self.directory.exists():
            shutil.rmtree(self.directory)

    # -- SSH ------------------------------------------------------------------------------

    def ssh_key_path(self) -> Path:
        return self.directory / "ssh" / "id_ed25519"

    def save_ssh_key(self, private_openssh: str) -> Path:
        """Store the cluster's SSH client key (0600) and return its path."""
        path = self.ssh_key_path()
        self._private_dir("ssh")
        write_private(
            path, private_openssh if private_openssh.endswith("\n") else private_openssh + "\n"
        )
        return path

    def _host_keys_path(self) -> Path:
        return self.directory / "ssh" / "known_hosts"

    def host_keys(self) -> dict[str, str]:
        """Pinned host keys: server name -> public key (``type base64``)."""
        path = self._host_keys_path()
        if not path.exists():
            return {}
        keys: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 3 and not line.startswith("#"):
                keys[parts[0]] = f"{parts[1]} {parts[2]}"
        return keys

    def save_host_key(self, server_name: str, public_key: str) -> None:
        """Pin ``server_name``'s host key in ``ssh/known_hosts`` (keyed by server name, for
        ``ssh -o HostKeyAlias=<server name>``), replacing an older key for the same server."""
        if not _SERVER_NAME.fullmatch(server_name) or len(server_name) > 63:
            raise ConfigError(f"invalid server name {server_name!r}")
        keys = self.host_keys()
        keys[server_name] = public_key
        self._private_dir("ssh")
        write_private(self._host_keys_path(), known_hosts_text(keys))

    def known_hosts_by_address(self) -> str:
        """known_hosts text keyed by each recorded server's public and private IP."""
        keys = self.host_keys()
        entries: dict[str, str] = {}
        servers = [self.scheduler] if self.scheduler else []
        servers += list(self.workers.values())
        for server in servers:
            key = keys.get(str(server.get("name")))
            if key is None:
                continue
            for address in (server.get("public_ip"), server.get("private_ip")):
                if address:
                    entries[str(address)] = key
        return known_hosts_text(entries)

    # -- TLS ------------------------------------------------------------------------------

    def _tls_dir(self) -> Path:
        return self.directory / "tls"

    def save_ca(self, ca: ClusterCA) -> None:
        """Store the cluster CA: ``tls/ca.pem`` and ``tls/ca-key.pem``, both 0600."""
        self._private_dir("tls")
        write_private(self._tls_dir() / "ca.pem", ca.cert_pem)
        write_private(self._tls_dir() / "ca-key.pem", ca.key_pem)

    def load_ca(self) -> ClusterCA:
        try:
            return ClusterCA(
                cert_pem=(self._tls_dir() / "ca.pem").read_text(encoding="ascii"),
                key_pem=(self._tls_dir() / "ca-key.pem").read_text(encoding="ascii"),
            )
        except FileNotFoundError:
            raise FileNotFoundError(
                f"cluster {self.name!r} has no CA in {self._tls_dir()}"
            ) from None

    def save_client_tls(self, ca_pem: str, leaf: CertKey) -> TlsFiles:
        """Store the local client's certificate: ``tls/client.pem``, ``tls/client-key.pem``."""
        self._private_dir("tls")
        return write_tls_files(self._tls_dir(), ca_pem, leaf, prefix="client")

    def client_tls(self) -> TlsFiles:
        files = TlsFiles(
            ca_file=self._tls_dir() / "ca.pem",
            cert_file=self._tls_dir() / "client.pem",
            key_file=self._tls_dir() / "client-key.pem",
        )
        missing = [
            p.name for p in (files.ca_file, files.cert_file, files.key_file) if not p.exists()
        ]
        if missing:
            raise FileNotFoundError(
                f"cluster {self.name!r} has no client TLS files ({', '.join(missing)} missing)"
            )
        return files
