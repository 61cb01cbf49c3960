"""Smoke test: bench/interactions.py runs end to end with a tiny n (no timing assertions)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_interactions_smoke(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "interactions.py"), "--n", "20", "--concurrency", "5"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("floor ") and "interactions in" in line for line in lines), proc.stdout
    assert any(line.startswith("warden ") and "interactions in" in line for line in lines), proc.stdout
    assert any(line.startswith("ratio warden/floor: ") for line in lines), proc.stdout
    assert "checks: 0 errors, 0 API conformance violations, ledger verifies" in proc.stdout


def test_bench_audit_smoke(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "audit.py"), "--n", "200", "--reverts", "5"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(
        line.startswith("throughput batch=200")
        and "200 decided once each" in line
        and "chain verifies" in line
        for line in lines
    ), proc.stdout
    assert any(line.startswith("first revert: 5 reverts") for line in lines), proc.stdout
