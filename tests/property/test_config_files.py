"""Hostile config files: `warden check-config` answers with messages, never a traceback.

Random text, the example policy with lines broken, and the example policy with values replaced,
removed or added anywhere in its tables. Each either loads (and its review is a list of lines) or
is refused with one readable line per problem.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.audit.defaults import active_rules_summary
from bot.cli import main
from bot.policy import Policy, PolicyError, parse_policy, review_policy
from sandbox.harness import EXAMPLE_CONFIG
from tests.helpers import HOSTILE_PIECES, mutated, property_settings

EXAMPLE_TEXT = EXAMPLE_CONFIG.read_text(encoding="utf-8")
EXAMPLE_DATA = tomllib.loads(EXAMPLE_TEXT)
SETTINGS = property_settings()


@st.composite
def broken_texts(draw: st.DrawFn) -> str:
    """The example file with lines deleted, duplicated or replaced by hostile text."""
    lines = EXAMPLE_TEXT.splitlines()
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "replace", "value"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "replace":
            lines[i] = draw(st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE_PIECES)))
        elif "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            value = draw(
                st.sampled_from(['""', "0", "-1", "1e400", "nan", "[]", "{}", '"9999999999d"', "true"])
            )
            lines[i] = f"{key}= {value}"
    return "\n".join(lines)


def assert_readable(problems: list[str]) -> None:
    assert problems, "a refusal must say what is wrong"
    for problem in problems:
        assert isinstance(problem, str) and problem.strip()
        assert "Traceback" not in problem


def check(data: dict[str, Any]) -> Policy | None:
    try:
        policy = parse_policy(data, "config.toml")
    except PolicyError as exc:
        assert_readable(exc.problems)
        return None
    for line in review_policy(policy):
        assert isinstance(line, str) and line.strip()
    assert active_rules_summary(policy).strip()
    return policy


@SETTINGS
@given(mutated(EXAMPLE_DATA))
def test_a_mutated_policy_loads_or_is_refused_with_messages(data: dict[str, Any]) -> None:
    check(data)


def run_check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["check-config", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


@SETTINGS
@given(text=st.one_of(broken_texts(), st.text(max_size=200), st.binary(max_size=200).map(repr)))
def test_check_config_answers_every_file_with_a_message(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code, output = run_check_config(path, capsys)
    assert code in (0, 2), output
    assert "Traceback" not in output
    if code == 2:
        assert output.startswith("warden: "), output
        assert len(output.strip()) > len("warden: ")


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_check_config_answers_bytes_that_are_not_text(
    raw: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(raw)
    code, output = run_check_config(path, capsys)
    assert code in (0, 2) and "Traceback" not in output, output
