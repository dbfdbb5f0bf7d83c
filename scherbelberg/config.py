"""The `scherbelberg` dask config namespace, loaded from the packaged YAML defaults.

Like dask-cloudprovider's `cloudprovider.yaml`: importing this module registers the defaults;
users override them with dask config files or `DASK_SCHERBELBERG__*` environment variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.config
import yaml

DEFAULTS_FILE = Path(__file__).with_name("scherbelberg.yaml")

with DEFAULTS_FILE.open() as _file:
    _defaults = yaml.safe_load(_file)
dask.config.update_defaults(_defaults)


def get(key: str, override: Any = None) -> Any:
    """`override` if given (not None), else the config value `scherbelberg.<key>`."""
    if override is not None:
        return override
    return dask.config.get(f"scherbelberg.{key}")
