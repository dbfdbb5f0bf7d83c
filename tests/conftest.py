"""Fixtures shared by the whole suite: one local Hetzner per test session, a project per test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hcloud import Client
from hcloud.servers import Server

from scherbelberg.emulator.control import LocalHetzner

# the local Hetzner's logs; one folder per user, so a run as root and one without root do not
# trip over each other's files in /tmp
LOG_DIR = Path(
    os.environ.get(
        "SCHERBELBERG_TEST_LOGS",
        Path(tempfile.gettempdir()) / f"scherbelberg-test-logs-{os.getuid()}",
    )
)
LOG_DIR.mkdir(parents=True, exist_ok=True)


T = TypeVar("T")


def must(value: T | None, what: str = "the value it always carries") -> T:
    """`value` from an API answer that must hold it: hcloud types every field of a resource as
    optional (a partial answer, e.g. a bare id, lacks them); a clear failure if it is absent."""
    if value is None:
        raise AssertionError(f"the API's answer has no {what}")
    return value


def public_ip(server: Server) -> str:
    """The server's public IPv4 address (every server here has one)."""
    network = must(server.public_net, f"public network of server {server.name}")
    return str(must(network.ipv4, f"public IPv4 of server {server.name}").ip)


MUST_RUN = "SCHERBELBERG_TESTS_MUST_RUN"  # set by ci/test: a skipped test fails the run
# where every test needs the local Hetzner's real machines (each starts real servers)
MACHINE_FOLDERS = ("e2e",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of the machine folders are `machines` tests without saying so: one cannot forget
    the mark, and `pytest -m "not machines"` is the fast tier that needs no root."""
    for item in items:
        if Path(str(item.path)).parent.name in MACHINE_FOLDERS:
            item.add_marker(pytest.mark.machines)


def machines_needed(session: pytest.Session) -> bool:
    return any(item.get_closest_marker("machines") for item in session.items)


@pytest.fixture(scope="session")
def local_hetzner(request: pytest.FixtureRequest) -> Iterator[LocalHetzner]:
    """A local Hetzner shared by the session: with real machines when a selected test needs
    them (its image is built once), else API-only (no root needed)."""
    log_path = LOG_DIR / "scherbelberg-test-emulator.log"
    default = "nspawn" if machines_needed(request.session) else "none"
    machines = os.environ.get("SCHERBELBERG_TEST_MACHINES", default)  # "none": API-only runs
    with log_path.open("a") as log, LocalHetzner(machines=machines, stderr=log) as hetzner:
        yield hetzner


@pytest.fixture
def project_token(local_hetzner: LocalHetzner) -> Iterator[str]:
    """A fresh, isolated project; whatever a test leaves in it is deleted afterwards."""
    token = local_hetzner.control.new_project()
    yield token
    delete_everything(Client(token, api_endpoint=local_hetzner.endpoint, poll_interval=0.2))


@pytest.fixture
def hcloud_client(local_hetzner: LocalHetzner, project_token: str) -> Client:
    return Client(project_token, api_endpoint=local_hetzner.endpoint, poll_interval=0.2)


def delete_everything(client: Client) -> None:
    for server in client.servers.get_all():
        client.servers.delete(server).wait_until_finished()
    for firewall in client.firewalls.get_all():
        client.firewalls.delete(firewall)
    for network in client.networks.get_all():
        client.networks.delete(network)
    for group in client.placement_groups.get_all():
        client.placement_groups.delete(group)
    for key in client.ssh_keys.get_all():
        client.ssh_keys.delete(key)


def skips_fail() -> bool:
    """Under ci/test (SCHERBELBERG_TESTS_MUST_RUN=1) or CI=true, against the local Hetzner, a
    skip is a failure: every skip here means "no machines", "a tool is missing" or "not the
    local Hetzner", and CI must run every test. Against the real Hetzner
    (SCHERBELBERG_E2E_TOKEN) the local-only tests skip, as docs/testing.md says."""
    wanted = os.environ.get(MUST_RUN) == "1" or bool(os.environ.get("CI"))
    return wanted and not os.environ.get("SCHERBELBERG_E2E_TOKEN")


def _must_have_run(report: pytest.TestReport) -> None:
    if report.skipped and skips_fail():
        report.outcome = "failed"
        report.longrepr = f"skipped, but every test must run ({MUST_RUN}): {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _must_have_run(outcome.get_result())  # type: ignore[attr-defined]


SKIPPED_MODULES: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """A whole module skipped at import (`pytest.skip(allow_module_level=True)`,
    `importorskip`) counts too: noted here, and the run fails at its end (failing the
    collection itself would stop every other test)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and skips_fail():
        SKIPPED_MODULES.append(f"{report.nodeid}: {report.longrepr}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in SKIPPED_MODULES:
        terminalreporter.write_line(f"FAILED (skipped, but every test must run): {line}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if SKIPPED_MODULES and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
