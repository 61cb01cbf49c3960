"""Session-wide sandbox conformance report.

Every :class:`~sandbox.SandboxDiscord` created while a test runs is tracked
(its ``conformance`` record: operations, per-operation call counts, violations).
At the end of the session the terminal summary says::

    sandbox conformance: N distinct Discord REST operations exercised, M requests, V violations

(with ``-v``, the sorted operation list with call counts follows), and the session
fails if any violation was recorded during a test that did not expect it.

A test that sends bad requests on purpose marks itself::

    @pytest.mark.expect_violations
    async def test_invalid_body_is_a_violation(): ...

or clears its sandbox's record (``sb.conformance.clear()``) once it has checked it.
Violations noticed outside any test (e.g. after the last one) are unexpected.

Registered from ``tests/conftest.py`` with ``pytest_plugins = ["tests.conformance_plugin"]``.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from sandbox.conformance import Conformance
from sandbox.server import SandboxDiscord

MARKER = "expect_violations"

# The innermost running session's report (a pytester run inside a run nests one more).
_ACTIVE: list[ConformanceReport] = []


def _install_constructor_hook() -> None:
    """Wrap SandboxDiscord.__init__ once per process so new sandboxes reach the active report."""
    if getattr(SandboxDiscord.__init__, "_conformance_report", False):
        return
    original = SandboxDiscord.__init__

    @functools.wraps(original)
    def __init__(self: SandboxDiscord, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if _ACTIVE:
            _ACTIVE[-1].track(self.conformance)

    __init__._conformance_report = True  # type: ignore[attr-defined]
    SandboxDiscord.__init__ = __init__  # type: ignore[method-assign]


class ConformanceReport:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.tracked: list[Conformance] = []  # only the small records, not the sandboxes
        self._seen: dict[int, int] = {}  # id(record) -> violations already accounted for
        self.expected: list[tuple[str, str]] = []
        self.unexpected: list[tuple[str, str]] = []

    def track(self, conformance: Conformance) -> None:
        self.tracked.append(conformance)
        self._seen[id(conformance)] = 0

    def _new_violations(self) -> list[str]:
        new: list[str] = []
        for record in self.tracked:
            seen = self._seen[id(record)]
            if len(record.violations) < seen:  # cleared by the test
                seen = 0
            new.extend(record.violations[seen:])
            self._seen[id(record)] = len(record.violations)
        return new

    def _account(self, where: str, expected: bool) -> None:
        for message in self._new_violations():
            (self.expected if expected else self.unexpected).append((where, message))

    # ------------------------------------------------------------------ hooks
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        self._account("(between tests)", expected=False)
        yield
        self._account(item.nodeid, expected=item.get_closest_marker(MARKER) is not None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._account("(after the last test)", expected=False)
        if self.unexpected and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @property
    def operations(self) -> dict[str, int]:
        calls: dict[str, int] = {}
        for record in self.tracked:
            for op, n in record.calls.items():
                calls[op] = calls.get(op, 0) + n
        return calls

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.tracked:
            return
        calls = self.operations
        violations = len(self.expected) + len(self.unexpected)
        tr = terminalreporter
        tr.write_sep("-", "sandbox conformance")
        tr.write_line(
            f"sandbox conformance: {len(calls)} distinct Discord REST operations exercised, "
            f"{sum(calls.values())} requests, {violations} violations "
            f"({len(self.expected)} expected, {len(self.unexpected)} unexpected) "
            f"from {len(self.tracked)} sandboxes"
        )
        if self.config.get_verbosity() > 0:
            for op in sorted(calls):
                tr.write_line(f"  {op:<45} {calls[op]:>7}")
        if self.unexpected:
            tr.write_line(
                f"FAILED: {len(self.unexpected)} unexpected Discord API conformance violation(s) "
                f"(mark a test that sends bad requests on purpose with @pytest.mark.{MARKER}):",
                red=True,
                bold=True,
            )
            for where, message in self.unexpected[:50]:
                tr.write_line(f"  {where}: {message}", red=True)
            if len(self.unexpected) > 50:
                tr.write_line(f"  … and {len(self.unexpected) - 50} more", red=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: the test sends requests Discord would reject on purpose; its sandbox "
        "conformance violations do not fail the session",
    )
    _install_constructor_hook()
    report = ConformanceReport(config)
    _ACTIVE.append(report)
    config.pluginmanager.register(report, "sandbox-conformance-report")


def pytest_unconfigure(config: pytest.Config) -> None:
    report = config.pluginmanager.get_plugin("sandbox-conformance-report")
    if report is not None:
        config.pluginmanager.unregister(report)
        if report in _ACTIVE:
            _ACTIVE.remove(report)
