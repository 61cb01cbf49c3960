"""The crash campaign, small: `warden run` SIGKILLs itself at one kill point of each flow (apply,
expire, extend, revoke, and a request whose card was never posted), is restarted, and every
promise holds. SQLite always; PostgreSQL too when WARDEN_TEST_DATABASE_URL is set.
`python -m sandbox.crash --all` runs every kill point (docs/reliability.md)."""

from __future__ import annotations

import pytest

from sandbox.crash import FLOW, SMALL, run_point


@pytest.mark.parametrize("point", SMALL)
async def test_a_kill_at_this_point_breaks_no_promise(point: str, db_url: str, tmp_path) -> None:
    result = await run_point(point, db_url, tmp_path)
    assert result.killed == 1, result.problems  # the process really died at the point
    assert result.restarts >= 1
    assert result.ok, "\n".join([result.line(), *result.problems, *result.findings.violations])
    assert result.findings.applied == result.findings.removed == 1


def test_the_small_campaign_covers_every_flow() -> None:
    assert {FLOW[p] for p in SMALL} == set(FLOW.values())
