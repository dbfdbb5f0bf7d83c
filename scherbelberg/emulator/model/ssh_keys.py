"""SSH keys: validated OpenSSH public keys with Hetzner's MD5 fingerprint."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from typing import Any

from .errors import invalid_input, not_found, uniqueness_error
from .records import SshKey
from .validation import check_labels, check_name, update_name_and_labels
from .world import Project, World

KEY_TYPES = {
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
}


def fingerprint(public_key: str) -> str:
    """MD5 of the key blob as colon-separated hex, as Hetzner shows it."""
    blob = _blob(public_key)
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _blob(public_key: str) -> bytes:
    parts = public_key.strip().split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise invalid_input("public_key", "not an OpenSSH public key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        inner = blob[4 : 4 + length].decode()
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise invalid_input("public_key", "not an OpenSSH public key") from None
    if inner != parts[0]:
        raise invalid_input("public_key", "key type does not match the key data")
    return blob


def get(project: Project, key_id: int) -> SshKey:
    key = project.ssh_keys.get(key_id)
    if key is None:
        raise not_found("ssh_key", key_id)
    return key


def create(world: World, project: Project, body: dict[str, Any]) -> SshKey:

    name = check_name(list(project.ssh_keys.values()), body.get("name"))
    public_key = body.get("public_key")
    if not isinstance(public_key, str):
        raise invalid_input("public_key", "public_key is required")
    fp = fingerprint(public_key)
    if any(k.fingerprint == fp for k in project.ssh_keys.values()):
        raise uniqueness_error("public_key")
    labels = check_labels(body.get("labels"))
    project.check_limit("ssh_keys", len(project.ssh_keys))
    key = SshKey(
        id=world.new_id(),
        name=name,
        public_key=public_key.strip(),
        fingerprint=fp,
        labels=labels,
        created=world.now(),
    )
    project.ssh_keys[key.id] = key
    return key


def update(project: Project, key_id: int, body: dict[str, Any]) -> SshKey:
    key = get(project, key_id)
    update_name_and_labels(key, project.ssh_keys.values(), body)
    return key


def delete(project: Project, key_id: int) -> None:
    get(project, key_id)
    del project.ssh_keys[key_id]
