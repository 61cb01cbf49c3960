"""Project hygiene: license, declared dependencies, pinned constraints, one test command."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# Import name → distribution name, where they differ.
DISTRIBUTION = {
    "discord": "discord.py",
    "sqlalchemy": "SQLAlchemy",
    "apscheduler": "APScheduler",
    "pydantic_settings": "pydantic-settings",
}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imports(*packages: str) -> set[str]:
    found: set[str] = set()
    for package in packages:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    # `_typeshed` exists only for type checkers (imported under TYPE_CHECKING), never at run time.
    local = {"bot", "cogs", "migrations", "tests", "sandbox", "bench", "_typeshed"}
    return {m for m in found if m not in sys.stdlib_module_names and m not in local}


def test_license_file_matches_pyproject() -> None:
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert "License :: OSI Approved :: MIT License" in PYPROJECT["project"]["classifiers"]


def test_every_imported_package_is_declared() -> None:
    # Every third-party import of the shipped packages (the sandbox ships too: `warden sandbox`),
    # including lazy ones inside functions, is a declared dependency, not a transitive accident.
    declared = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    shipped = _imports("bot", "cogs", "migrations", "sandbox")
    assert {"discord", "yarl", "aiohttp", "jsonschema"} <= shipped  # the scan sees imports
    missing = sorted(m for m in shipped if _name(DISTRIBUTION.get(m, m)) not in declared)
    assert missing == [], f"imported but not in [project].dependencies: {missing}"


def test_every_package_the_tests_import_is_declared() -> None:
    declared = {
        _name(r)
        for r in PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["test"]
    }
    missing = sorted(m for m in _imports("tests", "bench") if _name(DISTRIBUTION.get(m, m)) not in declared)
    assert missing == [], f"imported by tests but not in [project] dependencies or the test extra: {missing}"


def test_project_metadata_says_what_it_is() -> None:
    project = PYPROJECT["project"]
    classifiers = project["classifiers"]
    for prefix in (
        "Development Status ::",
        "License ::",
        "Programming Language :: Python :: 3.11",
        "Topic ::",
    ):
        assert any(c.startswith(prefix) for c in classifiers), prefix
    supported = [
        c.rsplit(" ", 1)[1]
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert min(supported) == project["requires-python"].removeprefix(">=")
    # There is no public home for the project yet: no made-up URLs (they would mislead a reader).
    for url in project.get("urls", {}).values():
        assert url.startswith("https://") and "example" not in url, url


def test_constraints_pin_every_declared_dependency() -> None:
    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[_name(name)] = version
    required = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["test"]
    unpinned = sorted({_name(r) for r in required} - set(pins))
    assert unpinned == []
    assert "warden" not in pins  # the project itself is installed editable, never pinned


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Run the tests", 1)[1].split("```sh", 1)[1].split("```", 1)[0].strip()
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    documented = re.search(r"^#   (python3 -m venv .*)$", ci, re.MULTILINE)
    assert documented and documented.group(1) == block
    # ... and the script runs those steps, in that order.
    steps = [
        '/bin/pip" install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"',
        '/bin/ruff" check .',
        '/bin/ruff" format --check .',
        '/bin/pytest" "$@"',
    ]
    positions = [ci.index(step) for step in steps]
    assert positions == sorted(positions)
    assert [c.strip() for c in block.split("&&")] == [
        "python3 -m venv .venv",
        '.venv/bin/pip install -c constraints.txt -e ".[test]"',
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/pytest",
    ]


def test_changelog_has_an_unreleased_section() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in text and f"## [{PYPROJECT['project']['version']}]" in text
