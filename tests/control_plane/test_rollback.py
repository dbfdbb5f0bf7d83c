"""A start that fails on the way rolls back: the error that caused it reaches the caller (its
class and Hetzner's code, not a wrapped RuntimeError), and nothing it made is left, neither
in the project nor in the local state. One case for each fault the local Hetzner can inject
into a start. (429, 502 and 504 on a create take the same path as 503 and 500 here, after
hcloud-python's own half-minute of retries: tests/e2e/test_transient.py rides them out.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from scherbelberg.errors import ConfigError, HetznerError, ScherbelbergError
from scherbelberg.hetzner import session

from .conftest import Project
from .local_nodes import LocalCluster


@dataclass
class Case:
    faults: dict[str, Any] = field(default_factory=dict)
    unavailable: tuple[str, ...] = ()
    limits: dict[str, int] = field(default_factory=dict)
    error: type[ScherbelbergError] = HetznerError
    code: str | int | None = None


def http(path: str, status: int | str, method: str = "POST", **more: Any) -> dict[str, Any]:
    return {"http": [{"path": path, "method": method, "status": status, **more}]}


CASES = {
    "ssh key refused (503)": Case(http("^/ssh_keys$", 503), code="unavailable"),
    "network refused (503)": Case(http("^/networks$", 503), code="unavailable"),
    "firewall refused (500)": Case(http("^/firewalls$", 500), code="server_error"),
    "server create refused (500)": Case(http("^/servers$", 500), code="server_error"),
    "server create unanswered": Case(http("^/servers$", "no_answer", delay=0.2), code="connection"),
    # 503, not 504: hcloud-python rides out a 504 itself for half a minute (module docstring)
    "action polls keep failing (503)": Case(
        http("^/actions$", 503, method="GET"),
        code=None,  # ridden out as transient, until the action's deadline
    ),
    "create action fails": Case({"failing_actions": {"create_server": 1.0}}, code="action_failed"),
    "start action fails": Case({"failing_actions": {"start_server": 1.0}}, code="action_failed"),
    "a worker never leaves initializing": Case(
        {"stuck_initializing": "-worker-"},
        code=None,  # the action's deadline
    ),
    "project's server limit": Case(limits={"servers": 2}, code="resource_limit_exceeded"),
    "placement group limit": Case(limits={"placement_groups": 0}, code="resource_limit_exceeded"),
    "every type sold out": Case(unavailable=("*@*",), error=ConfigError),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
@pytest.mark.usefixtures("quick_polls")
async def test_a_failed_start_leaves_nothing_and_raises_its_cause(
    case: Case, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the retries a real start rides out for a minute, cut short (the boundary faked here)
    monkeypatch.setattr(session, "FIRST_RETRY", 0.2)
    monkeypatch.setattr(session, "RETRY_SECONDS", 0.5)
    monkeypatch.setattr(session, "CONNECTION_RETRY_SECONDS", 0.5)
    if case.limits:
        project.token = project.control.new_project(None, None, **case.limits)
    project.control.set_faults(case.faults)
    if case.unavailable:
        project.control.set_unavailable(*case.unavailable)
    kwargs = project.kwargs(timeouts={"action": 2, "bootstrap": 10, "registration": 10})
    with pytest.raises(case.error) as caught:
        await LocalCluster(n_workers=3, **kwargs)
    if isinstance(caught.value, HetznerError):
        assert caught.value.code == case.code, caught.value
    project.control.clear_faults()
    project.control.set_unavailable()
    assert project.leftovers() == []
    assert project.clusters_in_state() == []
