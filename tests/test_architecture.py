"""docs/architecture.md is a map of the code: every path it names exists, and the bot stays apart from the sandbox."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PATH = re.compile(r"`((?:bot|cogs|docs|tests)/[\w./]*)`")
TESTS = ROOT / "tests"
# What a test module may import from tests/: the one shared helpers module (and a conftest, though
# its fixtures reach tests by name, not by import).
SHARED = "tests.helpers"


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


def imported_test_modules(source: str) -> list[str]:
    """The tests.* modules (or packages) a source file imports from; `from tests import x` names tests.x."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "tests" or a.name.startswith("tests.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "tests":
                found += [f"tests.{a.name}" for a in node.names]
            elif node.module.startswith("tests."):
                found.append(node.module)
    return found


def not_shared(module: str) -> bool:
    return module != SHARED and module.rsplit(".", 1)[-1] != "conftest"


def test_the_import_check_sees_every_form_of_import() -> None:
    source = (
        "import tests.e2e.test_core_flow\n"
        "from tests.e2e.test_core_flow import card_in\n"
        "from tests.report import test_report\n"
        "from tests.helpers import T0\n"
        "from tests import helpers\n"
        "from tests.report.conftest import populated\n"
        "def f():\n    from tests.audit import fakes\n"
    )
    assert [m for m in imported_test_modules(source) if not_shared(m)] == [
        "tests.e2e.test_core_flow",
        "tests.e2e.test_core_flow",
        "tests.report",
        "tests.audit",
    ]


def test_no_test_module_imports_another() -> None:
    """Shared fakes and builders live in tests/helpers.py, so no test depends on another test file."""
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for module in imported_test_modules(path.read_text(encoding="utf-8"))
        if not_shared(module)
    ]
    assert offenders == [], f"move what they share into tests/helpers.py: {offenders}"


# Folders of tests/ that are not a room of bot/: whole flows, and how the product is run or stressed.
SUITES = {
    "e2e": "whole flows through the sandbox",
    "cli": "the `warden` command (bot/cli.py, bot/audit_cli.py)",
    "sandbox": "the sandbox package beside bot/",
    "crash": "a process killed at each claim window",
    "soak": "long runs under load",
    "property": "generated inputs",
}


def test_tests_mirror_the_package() -> None:
    """A room's tests live in the folder of the same name: tests/requests/ for bot/requests/ and so on."""
    rooms = {p.name for p in (ROOT / "bot").iterdir() if (p / "__init__.py").exists()}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert {"requests", "approvals", "grants", "decisions"} <= folders
    strays = sorted(folders - rooms - set(SUITES))
    assert strays == [], (
        f"tests/ folders that mirror no room of bot/ (name them after one, or in SUITES): {strays}"
    )
