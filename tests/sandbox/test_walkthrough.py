"""`warden sandbox` with no arguments: the guided walkthrough, in a fresh process, offline."""

from __future__ import annotations

import os
import subprocess
import sys

from sandbox.walkthrough import WALKTHROUGH


def test_walkthrough_runs_and_shows_the_whole_story(tmp_path):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("WARDEN_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "sandbox"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # nothing but the installed package: no config in the working directory
        env=env,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for expected in (
        "1. alice: /jit request scope=deploy duration=2h reason=release 4.2",
        '#approvals: new card "Access request #1 — deploy"',
        '2. bob clicks Approve on "Access request #1 — deploy"',
        "Your approval of request #1 is counted (1 of 2).",
        '3. carol clicks Approve on "Access request #1 — deploy"',
        "✓ alice has role deployers",
        '✉ DM to alice: "**deploy** is yours',
        "Reminder: your access **deploy**",
        "has ended",
        "✓ alice does not have role deployers",
        '#governance: narrative "Access expired"',
        "(only erin) You may not request `deploy`",
        "✓ the ledger verifies",
        "✓ passed",
        "What to try next",
        "docs/scenarios.md",
        "warden run",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"
    assert "✗" not in out
    assert "PyNaCl" not in proc.stderr and "Traceback" not in proc.stderr


def test_walkthrough_is_a_scenario():
    from sandbox.scenario import parse_scenario
    from sandbox.walkthrough import walkthrough_data

    scenario = parse_scenario(walkthrough_data(), "walkthrough")
    assert scenario.steps == WALKTHROUGH["step"]
    assert scenario.guilds[0]["name"] == "acme"
