"""docs/architecture.md is a map of the code: every path it names exists, and the bot stays apart from the sandbox."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PATH = re.compile(r"`((?:bot|cogs|docs|tests)/[\w./]*)`")


def named_paths() -> tuple[list[str], list[str]]:
    """(paths that must exist, paths the map marks as not landed yet)."""
    present: list[str] = []
    pending: list[str] = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        found = PATH.findall(line)
        (pending if "once it lands" in line else present).extend(found)
    return present, pending


def test_every_module_the_map_names_exists() -> None:
    present, _ = named_paths()
    assert len(present) > 20, "the map names the rooms"
    missing = [p for p in present if not (ROOT / p).exists()]
    assert missing == [], f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_map_marks_rooms_that_have_not_landed() -> None:
    _, pending = named_paths()
    missing = [p for p in pending if (ROOT / p).exists()]
    assert missing == [], f"docs/architecture.md still says these have not landed: {missing}"


def test_importing_the_bot_does_not_import_the_sandbox() -> None:
    code = (
        "import sys, bot.client, bot.wiring, cogs.jit, cogs.approvals, cogs.admin, cogs.audit\n"
        "print(','.join(sorted(m for m in sys.modules if m == 'sandbox' or 'sandbox.' in m"
        " or m.endswith('.sandbox'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"the bot imported the sandbox: {out.stdout.strip()}"
