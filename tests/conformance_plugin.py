"""Session-wide sandbox conformance report.

Every :class:`~sandbox.SandboxDiscord` created while a test runs is tracked
(its ``conformance`` record: operations, per-operation call counts, violations).
At the end of the session the terminal summary says::

    sandbox conformance: N distinct Discord REST operations exercised, M requests, V violations

(with ``-v``, the sorted operation list with call counts follows). A violation recorded
during a test that did not expect it fails that test (an error at its teardown, naming the
violation), and the session fails too.

A test that sends bad requests on purpose marks itself::

    @pytest.mark.expect_violations
    async def test_invalid_body_is_a_violation(): ...

or clears its sandbox's record (``sb.conformance.clear()``) once it has checked it.
Violations noticed outside any test (e.g. after the last one) are unexpected and fail the session.

Under pytest-xdist (``-n 2``) the tests run in worker processes: the failing test is reported
as usual, and each worker sends its record (operations, call counts, violations) back to the
controller at its end (``workeroutput``), which prints the one summary for the whole run.

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
        # What xdist workers reported back (on the controller only).
        self.worker_calls: dict[str, int] = {}
        self.worker_sandboxes = 0

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

    def _account(self, where: str, expected: bool) -> list[str]:
        new = self._new_violations()
        (self.expected if expected else self.unexpected).extend((where, message) for message in new)
        return new

    # ------------------------------------------------------------------ hooks
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        self._account("(between tests)", expected=False)
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):
        """After the test's last fixture is torn down: its unexpected violations fail the test."""
        outcome = yield
        if call.when != "teardown":
            return
        expected = item.get_closest_marker(MARKER) is not None
        new = self._account(item.nodeid, expected=expected)
        if expected or not new:
            return
        report: pytest.TestReport = outcome.get_result()
        message = (
            f"{len(new)} unexpected Discord API conformance violation(s) "
            f"(mark a test that sends bad requests on purpose with @pytest.mark.{MARKER}):\n"
            + "\n".join(f"  {m}" for m in new)
        )
        if report.passed:
            report.outcome = "failed"
            report.longrepr = message
        else:
            report.sections.append(("sandbox conformance", message))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._account("(after the last test)", expected=False)
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: the controller reports
            workeroutput["sandbox_conformance"] = {
                "calls": self.operations,
                "sandboxes": len(self.tracked),
                "expected": self.expected,
                "unexpected": self.unexpected,
            }
        if self.unexpected and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist (controller): a worker finished; add its record to this run's."""
        record = getattr(node, "workeroutput", {}).get("sandbox_conformance")
        if record is None:
            return
        for op, n in record["calls"].items():
            self.worker_calls[op] = self.worker_calls.get(op, 0) + n
        self.worker_sandboxes += record["sandboxes"]
        self.expected.extend(tuple(v) for v in record["expected"])
        self.unexpected.extend(tuple(v) for v in record["unexpected"])

    @property
    def operations(self) -> dict[str, int]:
        calls = dict(self.worker_calls)
        for record in self.tracked:
            for op, n in record.calls.items():
                calls[op] = calls.get(op, 0) + n
        return calls

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        sandboxes = len(self.tracked) + self.worker_sandboxes
        if not sandboxes or hasattr(self.config, "workerinput"):
            return
        calls = self.operations
        violations = len(self.expected) + len(self.unexpected)
        tr = terminalreporter
        tr.write_sep("-", "sandbox conformance")
        tr.write_line(
            f"sandbox conformance: {len(calls)} distinct Discord REST operations exercised, "
            f"{sum(calls.values())} requests, {violations} violations "
            f"({len(self.expected)} expected, {len(self.unexpected)} unexpected) "
            f"from {sandboxes} sandboxes"
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
