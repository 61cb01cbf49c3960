"""The session-wide sandbox conformance report (tests/conformance_plugin.py), run in an inner pytest."""

from __future__ import annotations

import pytest

from tests.helpers import REPO

pytest_plugins = ["pytester"]

CONFTEST = 'pytest_plugins = ["tests.conformance_plugin"]\n'

HELPERS = """
import aiohttp
import pytest

from sandbox import SandboxDiscord


async def call(sb, method, path, **kw):
    headers = {"Authorization": f"Bot {sb.token}"}
    async with aiohttp.ClientSession() as s, s.request(method, sb.api_url + path, headers=headers, **kw) as r:
        return r.status
"""

GOOD = """
async def test_good():
    async with SandboxDiscord() as sb:
        g = sb.create_guild("acme")
        assert await call(sb, "GET", "/users/@me") == 200
        assert await call(sb, "POST", f"/channels/{g.channel('general').id}/messages", json={"content": "hi"}) == 200
"""

BAD = """
async def test_bad():
    async with SandboxDiscord() as sb:
        g = sb.create_guild("acme")
        assert await call(sb, "POST", f"/channels/{g.channel('general').id}/messages", json={"content": 5}) == 400
"""

BAD_EXPECTED = """
@pytest.mark.expect_violations
async def test_bad_on_purpose():
    async with SandboxDiscord() as sb:
        assert await call(sb, "GET", "/no/such/route") == 404


async def test_bad_then_cleared():
    async with SandboxDiscord() as sb:
        assert await call(sb, "GET", "/no/such/route") == 404
        assert len(sb.conformance.violations) == 1
        sb.conformance.clear()
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\naddopts = --strict-markers\n"
    )
    return pytester


def test_summary_line_and_operations(inner: pytest.Pytester) -> None:
    inner.makepyfile(HELPERS + GOOD)
    result = inner.runpytest("-v")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "sandbox conformance: 2 distinct Discord REST operations exercised, 2 requests, 0 violations*",
            "  create_message *1",
            "  get_my_user *1",
        ]
    )


def test_unexpected_violation_fails_the_test_and_the_session(inner: pytest.Pytester) -> None:
    inner.makepyfile(HELPERS + GOOD + BAD)
    result = inner.runpytest()
    # test_bad's own assertions passed; its violation fails it at teardown, and the run.
    result.assert_outcomes(passed=2, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_bad*",
            "*1 unexpected Discord API conformance violation(s)*",
            "*create_message*body.content*",
            "sandbox conformance: * 1 violations (0 expected, 1 unexpected)*",
            "FAILED: 1 unexpected Discord API conformance violation(s)*",
            "*.py::test_bad: create_message*body.content*",
        ]
    )


def test_marked_or_cleared_violations_do_not_fail(inner: pytest.Pytester) -> None:
    inner.makepyfile(HELPERS + BAD_EXPECTED)
    result = inner.runpytest()
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["sandbox conformance: * 1 violations (1 expected, 0 unexpected)*"])
    result.stdout.no_fnmatch_line("FAILED*")


def test_under_xdist_the_test_fails_and_the_workers_report_to_one_summary(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `-n 2` the tests run in worker processes: the violation still fails its test, and the
    controller's summary counts every worker's sandboxes, requests and violations."""
    inner.makepyfile(HELPERS + GOOD + BAD + BAD_EXPECTED)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the new processes import tests.conformance_plugin
    result = inner.runpytest_subprocess("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=4, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_bad*",
            "*create_message*body.content*",
            "sandbox conformance: 2 distinct Discord REST operations exercised, 3 requests, "
            "2 violations (1 expected, 1 unexpected) from 4 sandboxes",
            "FAILED: 1 unexpected Discord API conformance violation(s)*",
            "*::test_bad: create_message*body.content*",
        ]
    )


def test_outer_session_does_not_see_inner_sandboxes(
    inner: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    """The plugin reports to the innermost running session only, so this run stays green."""
    outer = pytestconfig.pluginmanager.get_plugin("sandbox-conformance-report")
    assert outer is not None
    tracked, unexpected = len(outer.tracked), len(outer.unexpected)
    inner.makepyfile(HELPERS + BAD)
    assert inner.runpytest().ret == pytest.ExitCode.TESTS_FAILED
    assert (len(outer.tracked), len(outer.unexpected)) == (tracked, unexpected)
