"""mypy runs with the suite, so typing is checked by the test command, not in review."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).parents[1]


def test_mypy_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    # From the repo root, with [tool.mypy] in pyproject.toml (files, flags, overrides) and
    # the incremental cache in .mypy_cache, shared with plain `mypy` runs.
    monkeypatch.chdir(ROOT)
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml")])
    assert status == 0, f"mypy failed (exit {status}):\n{stdout}{stderr}"
