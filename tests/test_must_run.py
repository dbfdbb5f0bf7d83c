"""`.ci/run` (ci/test) fails when a test would skip: a skipped machine test must not pass as
green. Proven with pytest's own `pytester` on a throwaway suite that uses our conftest."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
SUITE = {
    "test_skips": """
import pytest

def test_skipped_in_the_test():
    pytest.skip("no machines here")

@pytest.mark.skipif(True, reason="a tool is missing")
def test_skipped_by_mark():
    pass

def test_runs():
    pass
""",
    "test_module_skip": """
import pytest
pytest.skip("no nspawn", allow_module_level=True)
""",
}


def run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, must_run: bool
) -> pytest.RunResult:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("SCHERBELBERG_E2E_TOKEN", raising=False)
    if must_run:
        monkeypatch.setenv("SCHERBELBERG_TESTS_MUST_RUN", "1")
    else:
        monkeypatch.delenv("SCHERBELBERG_TESTS_MUST_RUN", raising=False)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(**SUITE)
    # in-process: the throwaway suite's conftest imports what ours does, already loaded here
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:randomly")


def test_without_the_rule_skips_are_skips(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(pytester, monkeypatch, must_run=False)
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == 0


def test_under_ci_test_every_skip_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(pytester, monkeypatch, must_run=True)
    # a skip in the test fails it; a skip mark fails its setup (an error); the module skip is
    # reported as skipped, and fails the run at its end
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FAILED (skipped, but every test must run): *no nspawn*"])


def test_ci_test_sets_the_rule() -> None:
    script = (Path(__file__).parents[1] / "ci" / "test").read_text()
    assert "export SCHERBELBERG_TESTS_MUST_RUN=1" in script
