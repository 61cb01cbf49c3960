"""Smoke test: ``python -m bench --quick`` runs every figure end to end (no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def bench(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` from ``cwd`` as a user would, with no WARDEN_ settings of the suite's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bench_quick_runs_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = bench(tmp_path, "-m", "bench", "--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for figure in (
        "1. time to the visible answer",
        "2. throughput",
        "3. /jit mine while it drains",
        "4. bulk expiry",
        "5. audit, 200 entries, sqlite",
        "6. 3 guilds",
    ):
        assert figure in proc.stdout, proc.stdout
    assert "checks: ledger verifies, 0 API conformance violations, 0 unanswered interactions" in proc.stdout
    result = json.loads(out.read_text())
    for side in ("warden", "floor"):
        answers = result["answer"][side]
        assert answers["one_at_a_time"]["/jit request"]["n"] == 2
        assert all(kind["errors"] == 0 for mode in answers.values() for kind in mode.values())
    assert result["expiry"]["rate_limited"]["left_holding"] == 0
    assert result["expiry"]["unlimited"]["sqlite"]["left_holding"] == 0
    assert result["startup"]["warden"]["rss_mb"] > 0
    audit = result["audit"]["sqlite"]
    assert audit["decided_once_each"] and audit["chain_verifies"] and audit["ledger_entries"] == 303


def test_bench_refuses_an_unknown_figure(tmp_path: Path) -> None:
    proc = bench(tmp_path, "-m", "bench", "--only", "speed", timeout=60)
    assert proc.returncode == 2
    assert (
        "unknown figure(s) ['speed']; choose from answer, throughput, expiry, audit, startup" in proc.stderr
    )


def test_bench_audit_smoke(tmp_path: Path) -> None:
    proc = bench(tmp_path, str(REPO / "bench" / "audit.py"), "--n", "200", "--reverts", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(
        line.startswith("throughput batch=200")
        and "200 decided once each" in line
        and "chain verifies" in line
        for line in lines
    ), proc.stdout
    assert any(line.startswith("first revert: 5 reverts") for line in lines), proc.stdout


def test_bench_answer_first_smoke(tmp_path: Path) -> None:
    args = ("--n", "2", "--burst", "2", "--rounds", "1")
    proc = bench(tmp_path, str(REPO / "bench" / "answer_first.py"), *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for mode in ("answer first", "cards first"):
        assert f"one_at_a_time {mode} Approve" in out and f"burst_2 {mode} /jit request" in out, out
    assert "ledger verifies" in out


def test_bench_connection_smoke(tmp_path: Path) -> None:
    proc = bench(tmp_path, str(REPO / "bench" / "connection.py"), "--n", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {line.split("  ")[0].strip(): line.split()[-4:] for line in proc.stdout.splitlines()}
    for kind in ("/jit request", "Approve", "/jit mine"):
        checkouts, statements, held, _wall = (float(x) for x in rows[kind])
        assert checkouts >= 1 and statements >= 2 and held > 0, proc.stdout
    assert "answers/s however many run at once" in proc.stdout
