"""The soak, small: a virtual hour of mixed traffic with 20% of Discord's mutations failing,
gateway drops, restarts and a database outage; every promise holds at the end.
`python -m sandbox.soak --hours 24` runs the virtual day (docs/reliability.md)."""

from __future__ import annotations

from sandbox.soak import run_soak


async def test_a_virtual_hour_under_faults_breaks_no_promise(db_url: str, tmp_path) -> None:
    report = await run_soak(1, db_url, tmp_path, seed=11, ops_per_hour=20)
    print("\n".join(report.lines()))
    assert report.violations == [], "\n".join(report.lines())
    # The traffic and the faults really happened.
    ops = report.operations
    assert ops["request"] >= 5 and ops["approve"] >= 3
    assert ops["restart"] >= 1 and ops["gateway_drop"] >= 1 and ops["database_outage"] == 1
    assert report.faults >= 5 and report.findings.applied >= 2
    assert report.findings.applied == report.findings.removed
