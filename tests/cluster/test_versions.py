"""Version checks name every package that differs between client and node."""

from __future__ import annotations

import pytest

from scherbelberg.cluster.versions import VersionMismatch, check, client_versions, mismatches


def node_like_client(**changes: str) -> dict[str, object]:
    packages: dict[str, object] = {k: v for k, v in client_versions().items() if v}
    packages.update(changes)
    return {"host": {"python": packages["python"]}, "packages": packages}


def test_same_versions_pass() -> None:
    assert mismatches(client_versions(), node_like_client()) == []
    check("worker w", node_like_client())


def test_patch_release_of_python_may_differ() -> None:
    major_minor = ".".join(str(client_versions()["python"]).split(".")[:2])
    assert mismatches(client_versions(), node_like_client(python=f"{major_minor}.0")) == []


def test_mismatch_names_the_packages() -> None:
    remote = node_like_client(dask="1999.1.0", python="3.8.10")
    with pytest.raises(VersionMismatch) as raised:
        check("scheduler s", remote)
    message = str(raised.value)
    assert "scheduler s" in message
    assert "dask client=" in message and "node=1999.1.0" in message
    assert "python client=" in message and "node=3.8" in message
    assert "distributed" not in message


def _distributed_warning(
    scheduler_python: str,
    worker_python: str,
    client_lacks: tuple[str, ...] = (),
    scheduler_pkgs: dict[str, str] | None = None,
    **worker_pkgs: str,
) -> str:
    """The text distributed's Client warns with, made by distributed itself."""
    from distributed.versions import error_message, get_versions

    client = get_versions()
    client["packages"]["python"] = "3.11.7.final.0"
    scheduler = {
        **client,
        "packages": {**client["packages"], "python": scheduler_python, **(scheduler_pkgs or {})},
    }
    worker = {
        **client,
        "packages": {**client["packages"], "python": worker_python, **worker_pkgs},
    }
    client = {**client, "packages": {**client["packages"], **dict.fromkeys(client_lacks)}}
    return str(error_message(scheduler, {"tls://w": worker}, client)["warning"])


DEBIAN = "3.11.2.final.0"


@pytest.mark.parametrize(
    ("scheduler", "worker", "client_lacks", "scheduler_pkgs", "packages", "silenced"),
    [
        (DEBIAN, DEBIAN, (), {}, {}, True),  # Debian 12's patch release: harmless
        ("3.12.1.final.0", DEBIAN, (), {}, {}, False),  # another minor release
        (DEBIAN, DEBIAN, (), {}, {"dask": "1999.1.0"}, False),  # and a package
        # a client without numpy (a fresh venv), nodes that agree: harmless
        (DEBIAN, DEBIAN, ("numpy",), {"numpy": "2.4.6"}, {"numpy": "2.4.6"}, True),
        # ... but nodes that disagree with each other still warn
        (DEBIAN, DEBIAN, ("numpy",), {"numpy": "2.4.6"}, {"numpy": "2.4.5"}, False),
    ],
)
def test_only_harmless_version_warnings_are_silenced(
    scheduler: str,
    worker: str,
    client_lacks: tuple[str, ...],
    scheduler_pkgs: dict[str, str],
    packages: dict[str, str],
    silenced: bool,
) -> None:
    import re
    import warnings

    from distributed.versions import VersionMismatchWarning

    from scherbelberg.cluster.versions import harmless_mismatch_pattern

    message = _distributed_warning(scheduler, worker, client_lacks, scheduler_pkgs, **packages)
    assert message.startswith("Mismatched versions found")
    assert bool(re.match(harmless_mismatch_pattern(3, 11), message, re.I)) is silenced, message
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.filterwarnings(
            "ignore", message=harmless_mismatch_pattern(3, 11), category=VersionMismatchWarning
        )
        warnings.warn(VersionMismatchWarning(message), stacklevel=1)
    assert (len(seen) == 0) is silenced
