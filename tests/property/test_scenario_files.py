"""Hostile scenario files: the loader (sandbox/scenario.py) lists problems, never raises anything else.

The example scenarios with values replaced, removed or added anywhere, random text, and bytes that
are not UTF-8. Each either loads or is refused with a ScenarioError whose every line says what is
wrong — which is what `warden sandbox run` prints.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from sandbox.scenario import ScenarioError, load_scenario, parse_scenario
from tests.helpers import HOSTILE_PIECES, mutated, property_settings

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "scenarios").glob("*.toml"))
PARSED = [tomllib.loads(p.read_text(encoding="utf-8")) for p in EXAMPLES]
SETTINGS = property_settings()


def assert_refused_readably(exc: ScenarioError) -> None:
    assert exc.problems
    for problem in exc.problems:
        assert isinstance(problem, str) and problem.strip() and "Traceback" not in problem
    assert str(exc).strip()


def test_there_are_examples_to_mutate() -> None:
    assert len(PARSED) >= 5


@SETTINGS
@given(st.sampled_from(PARSED).flatmap(mutated))
@example({"name": "x", "step": [{"admin": []}]})  # once a TypeError (unhashable list) in the loader
@example({"name": "x", "step": [{"fault": {"route": {}}}]})
def test_a_mutated_scenario_loads_or_lists_its_problems(data: dict[str, Any]) -> None:
    try:
        parse_scenario(data, "mutated.toml", EXAMPLES[0].parent)
    except ScenarioError as exc:
        assert_refused_readably(exc)


@SETTINGS
@given(
    content=st.one_of(
        st.text(max_size=200),
        st.sampled_from(HOSTILE_PIECES),
        st.binary(max_size=200),
        st.sampled_from(EXAMPLES)
        .map(lambda p: p.read_bytes())
        .flatmap(
            lambda raw: st.integers(0, len(raw)).map(lambda n: raw[:n])  # cut off anywhere
        ),
    )
)
@example(content=b"\x80")  # once a bare UnicodeDecodeError
def test_any_file_loads_or_lists_its_problems(content: str | bytes, tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        load_scenario(path)
    except ScenarioError as exc:
        assert_refused_readably(exc)


@SETTINGS
@given(policy=st.one_of(st.text(max_size=80), st.sampled_from(HOSTILE_PIECES)))
@example(policy="a\x00b")  # once a bare ValueError (embedded null byte) from the policy loader
def test_any_policy_path_loads_or_lists_its_problems(policy: str) -> None:
    data = {"name": "p", "policy": policy, "step": [{"advance": "1m"}]}
    try:
        parse_scenario(data, "paths.toml", EXAMPLES[0].parent)
    except ScenarioError as exc:
        assert_refused_readably(exc)
