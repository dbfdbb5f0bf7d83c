"""Bootstrapping a Hetzner server into a Dask scheduler or worker with cloud-init alone."""

from scherbelberg.bootstrap.cloud_config import (
    LOG_FILE,
    MAX_USER_DATA,
    STATE_DIR,
    WAIT_COMMAND,
    NodeConfig,
    NodeTls,
    build_cloud_config,
    service_name,
)
from scherbelberg.bootstrap.env import EnvSpec, client_env_spec, install_script

__all__ = [
    "LOG_FILE",
    "MAX_USER_DATA",
    "STATE_DIR",
    "WAIT_COMMAND",
    "EnvSpec",
    "NodeConfig",
    "NodeTls",
    "build_cloud_config",
    "client_env_spec",
    "install_script",
    "service_name",
]
