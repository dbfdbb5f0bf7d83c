"""The `scherbelberg` dask config namespace, loaded from the packaged YAML defaults.

Like dask-cloudprovider's `cloudprovider.yaml`: importing this module registers the defaults;
users override them with dask config files or `DASK_SCHERBELBERG__*` environment variables.

A setting can come from an argument, the dask config (a file, `dask.config.set`, an environment
variable) or the packaged default; `resolve` records which, so an error found later (e.g. by
the API's catalog) can say which setting to change and where the value came from.
"""

from __future__ import annotations

import os
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


class Sourced(str):
    """A string setting that knows what it is and where it came from.

    Why a str: the value travels through code that only passes it on (to the API, into the
    state file) and reaches checks far from the arguments, e.g. the catalog's "not offered in
    this location", which can then name the setting to change.
    """

    what: str  # "scheduler server type"
    source: str  # "argument scheduler_server_type=", "the default; set …"

    def __new__(cls, value: object, what: str = "", source: str = "") -> Sourced:
        made = super().__new__(cls, value)
        made.what = what or getattr(value, "what", "")
        made.source = source or getattr(value, "source", "")
        return made


def source(key: str, override: Any = None, argument: str | None = None) -> str:
    """Where `scherbelberg.<key>` comes from: the argument, an environment variable, the dask
    config, or the packaged default (the value in scherbelberg.yaml, from no variable)."""
    if isinstance(override, Sourced) and override.source:
        return override.source
    if override is not None:
        return f"argument {argument or key}="
    value = dask.config.get(f"scherbelberg.{key}", None)
    variable = _variable(key)
    if variable is not None and _same(value, dask.config.interpret_value(os.environ[variable])):
        return f"from the environment variable {variable}"
    if _same(value, _packaged(key)):
        return (
            "the default"
            + (f"; set {argument}= or" if argument else "; set")
            + (f" scherbelberg.{key}")
        )
    return f"from the dask config scherbelberg.{key}"


def _variable(key: str) -> str | None:
    """The DASK_SCHERBELBERG__… environment variable that sets `key`, if one is set."""
    wanted = _canonical(f"scherbelberg.{key}")
    for name in os.environ:
        if name.startswith("DASK_") and _canonical(name[5:].lower().replace("__", ".")) == wanted:
            return name
    return None


def _packaged(key: str) -> Any:
    node: Any = _defaults
    for part in f"scherbelberg.{key}".split("."):
        if not isinstance(node, dict):
            return None
        node = next((v for k, v in node.items() if _canonical(k) == _canonical(part)), None)
    return node


def _canonical(key: str) -> str:
    return key.replace("_", "-")


def _same(a: Any, b: Any) -> bool:
    return a == b or (a is not None and b is not None and str(a) == str(b))
