"""Scenario files: every example passes, failures and malformed files say what is wrong, the CLI's exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sandbox.scenario import ScenarioError, load_scenario, parse_scenario, run_scenario_file
from tests.helpers import REPO

EXAMPLES = sorted((REPO / "examples" / "scenarios").glob("*.toml"))

FAILING = """
name = "Deliberately failing"

[[step]]
as = "alice"
slash = "jit request"
options = { scope = "deploy", duration = "2h", reason = "release" }
expect_reply = "waiting for approval"
expect = [
  { member = "alice", has_role = "deployers" },
  { channel = "approvals", message_contains = "Granted until" },
]

[[step]]
as = "bob"
click = "Approve"
on = { channel = "approvals", contains = "Access request #7" }

[[step]]
advance = "1h"
"""


def test_there_are_examples():
    names = {p.name for p in EXAMPLES}
    for required in (
        "core-flow.toml",
        "deny-with-reason.toml",
        "bad-request.toml",
        "expiry-across-restart.toml",
        "discord-failure-retried.toml",
        "two-approver-quorum.toml",
    ):
        assert required in names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
async def test_example_passes(path):
    lines: list[str] = []
    result = await run_scenario_file(path, lines.append)
    transcript = "\n".join(lines)
    assert result.passed, transcript
    assert result.checks > 0 and result.steps_run == result.steps_total
    assert lines[0].startswith("▶ ") and lines[-1].startswith("✓ passed")


async def test_failing_scenario_says_what_was_expected_and_what_was_there(tmp_path):
    path = tmp_path / "failing.toml"
    path.write_text(FAILING)
    lines: list[str] = []
    result = await run_scenario_file(path, lines.append)
    transcript = "\n".join(lines)
    assert not result.passed
    assert "expected alice to have role deployers; alice has: engineers" in result.failures
    assert any(
        "expected a message containing 'Granted until' in #approvals; last 1: " in f
        and "Access request #1" in f
        for f in result.failures
    ), result.failures
    # A step that cannot be carried out stops the scenario, naming the step and what was there.
    assert result.error is not None and result.error.startswith("step 2 (bob clicks Approve) failed")
    assert "no message containing 'Access request #7' in #approvals" in result.error
    assert result.steps_run == 2 and result.steps_total == 3
    assert "✓ reply says 'waiting for approval'" in transcript
    assert "✗ failed: 2 of 3 expectations; stopped at step 2, 1 step not run" in transcript


def test_malformed_scenario_names_the_bad_keys(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        """
name = "Malformed"
colour = "red"
[[step]]
as = "alice"
slash = "jit request"
optoins = { scope = "deploy" }
[[step]]
advance = "soon"
expect = [{ member = "alice", has_rol = "x" }]
[[step]]
admin = "add_role"
member = "erin"
[[step]]
as = "bob"
click = "Approve"
[[step]]
restart = true
advance = "1h"
[[step]]
as = "carol"
select = "bob"
on = { reply = true }
[[step]]
as = "carol"
select = ["bobby"]
on = { dm = "carol" }
"""
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    problems = err.value.problems
    text = "\n".join(problems)
    assert "colour: unknown key; allowed here: name, description, policy, now, guild, step" in problems
    assert "step[1].optoins: unknown key (did you mean 'options'?)" in text
    assert "step[2].advance: 'soon' is not a duration" in text
    assert "step[2].expect[0].has_rol: unknown key" in text
    assert "step[3].role: required for admin = 'add_role'" in text
    assert "step[4].on: required for click" in text
    assert "step[5]: one action per step, found restart, advance; split it into steps" in text
    assert "step[6].select: the choices, as a list of names or option values" in text


def test_policy_problems_are_reported_with_the_scenario(tmp_path):
    with pytest.raises(ScenarioError) as err:
        parse_scenario(
            {
                "name": "x",
                "policy": {"guild": {"acme": {"approvals_channel": "approvals"}}},
                "step": [{"advance": "1m"}],
            },
            "inline",
        )
    assert any(p.startswith("policy: ") and "governance_channel" in p for p in err.value.problems)
    with pytest.raises(ScenarioError) as err:
        parse_scenario({"name": "x", "policy": "missing.toml", "step": [{"advance": "1m"}]}, "s", tmp_path)
    assert "file not found" in str(err.value)


def _cli(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


def test_cli_exit_codes_and_transcript(tmp_path):
    failing = tmp_path / "failing.toml"
    failing.write_text(FAILING)
    good_proc = _cli("--scenario", str(REPO / "examples/scenarios/two-approver-quorum.toml"))
    bad_proc = _cli("--quiet", "--scenario", str(failing))
    ok_out, ok_err = good_proc.communicate(timeout=60)
    bad_out, _ = bad_proc.communicate(timeout=60)

    assert good_proc.returncode == 0, ok_out + ok_err
    assert "▶ Two-approver quorum" in ok_out
    assert "1. alice: /jit request scope=deploy duration=1h reason=release" in ok_out
    assert '2. bob clicks Approve on "Access request #1 — deploy"' in ok_out
    assert "(only bob) Your approval of request #1 is counted (1 of 2)." in ok_out
    assert "✓ passed" in ok_out

    assert bad_proc.returncode == 1
    assert "✗ expected alice to have role deployers; alice has: engineers" in bad_out
    assert "1. alice:" not in bad_out  # --quiet: only failures and the summary
    assert "✗ failed" in bad_out


def test_names_are_checked_before_running(tmp_path):
    with pytest.raises(ScenarioError) as err:
        parse_scenario(
            {
                "name": "x",
                "step": [
                    {"as": "bobb", "click": "Approve", "on": {"channel": "aprovals", "contains": "#1"}},
                    {"expect": [{"dm": "zed", "message_contains": "hi"}]},
                ],
            },
            "names",
        )
    text = "\n".join(err.value.problems)
    assert "step[1].as: no member named 'bobb' in acme (did you mean 'bob'?)" in text
    assert "step[1].on.channel: no channel named 'aprovals' in acme (did you mean 'approvals'?)" in text
    assert "step[2].expect[0].dm: no member named 'zed'" in text


async def test_runner_patches_nothing_process_wide():
    # Warden's retry back-off is shortened through the bot's Tuning; discord.py and Warden's
    # modules stay as they are while a scenario runs (other bots in the process are unaffected).
    import asyncio

    import discord.http
    import tenacity

    import bot.discord_io.ops as ops

    seen: list[bool] = []

    def out(line: str) -> None:
        seen.append(discord.http.asyncio is asyncio and ops.AsyncRetrying is tenacity.AsyncRetrying)

    result = await run_scenario_file(REPO / "examples" / "scenarios" / "discord-failure-retried.toml", out)
    assert result.passed
    assert seen and all(seen)


async def test_multi_line_replies_are_shown_whole():
    # The /warden doctor report is one reply of many lines: the transcript shows every line of it.
    scenario = parse_scenario(
        {
            "name": "doctor",
            "step": [
                {"admin": "delete_role", "role": "deployers"},
                {"as": "owner", "slash": "warden doctor", "expect_reply": "problem(s) found"},
            ],
        },
        "doctor",
    )
    lines: list[str] = []
    from sandbox.scenario import run_scenario

    result = await run_scenario(scenario, lines.append)
    assert result.passed, "\n".join(lines)
    start = next(i for i, ln in enumerate(lines) if "(only owner) **Warden doctor — acme**" in ln)
    report = lines[start : start + 9]
    assert report[0].endswith("1 problem(s) found."), report
    assert "       ✅ Server permissions, intents and channels" in report
    assert "       ❌ **scope `deploy` (role)**" in report
    assert any(
        ln.startswith("         • `deploy` names the role `deployers`, which does not exist") for ln in report
    ), report
    assert "       ✅ scope `breakglass-admin` (role)" in report


def test_every_unknown_key_and_wrong_name_in_one_pass(tmp_path):
    # Unknown keys and wrong names at every level of one file: all reported together, each with
    # where it is and the closest right word (before, names were checked only once keys were right).
    path = tmp_path / "many.toml"
    path.write_text(
        """
name = "Many mistakes"
descripton = "typo"

[[guild]]
name = "acme"
rolez = []
roles = [{ name = "engineers" }, { name = "sec-leads", colour = "red" }]
members = [{ name = "alice", roles = ["engineer"] }, { name = "bob", roles = ["sec-leads"], nick = "b" }]
channels = [{ name = "approvals" }, { name = "governance" }]

[[step]]
as = "alicee"
slash = "jit request"
optons = { scope = "deploy" }
expect = [{ member = "alice", has_rol = "deployers" }, { membr = "bob", has_role = "sec-lead" }]

[[step]]
as = "bob"
click = "Approve"
on = { channel = "aprovals", contains = "#1" }
expect = [{ member = "bob", lacks_role = "sec-lead" }, { dm = "carol", message_contains = "x" }]

[[step]]
admin = "add_rolee"
member = "bob"

[[step]]
admin = "add_role"
member = "bob"
role = "engineerz"

[[step]]
guild = "acmee"
advance = "1h"

[[step]]
fault = { route = "add_roles" }
"""
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    text = "\n".join(err.value.problems)
    for expected in (
        "descripton: unknown key (did you mean 'description'?)",
        "guild[0].rolez: unknown key (did you mean 'roles'?)",
        "guild[0].roles[1].colour: unknown key",
        "guild[0].members[1].nick: unknown key",
        "guild[0].members[0].roles[0]: no role named 'engineer' in acme (did you mean 'engineers'?)",
        "step[1].optons: unknown key (did you mean 'options'?)",
        "step[1].as: no member named 'alicee' in acme (did you mean 'alice'?)",
        "step[1].expect[0].has_rol: unknown key (did you mean 'has_role'?)",
        "step[1].expect[1].membr: unknown key (did you mean 'member'?)",
        "step[2].on.channel: no channel named 'aprovals' in acme (did you mean 'approvals'?)",
        "step[2].expect[0].lacks_role: no role named 'sec-lead' in acme (did you mean 'sec-leads'?)",
        "step[2].expect[1].dm: no member named 'carol' in acme",
        "step[3].admin: 'add_rolee' is not an admin action (did you mean 'add_role'?)",
        "step[4].role: no role named 'engineerz' in acme (did you mean 'engineers'?)",
        "step[5].guild: no server named 'acmee' (did you mean 'acme'?)",
        "step[6].fault.route: 'add_roles' is not known (did you mean 'add_role'?)",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"


async def test_wrong_command_and_option_names_are_all_reported_before_anything_runs(tmp_path):
    # Commands exist once Warden registered them: they are checked then, every slash step at once.
    path = tmp_path / "cmds.toml"
    path.write_text(
        """
name = "wrong commands"
[[step]]
as = "alice"
slash = "jit reqest"
options = { scope = "deploy" }
[[step]]
as = "alice"
slash = "jit request"
options = { scop = "deploy", durration = "1h", reason = "x" }
[[step]]
as = "owner"
slash = "warden docter"
"""
    )
    lines: list[str] = []
    result = await run_scenario_file(path, lines.append)
    text = "\n".join(lines)
    assert not result.passed and result.steps_run == 0, text
    for expected in (
        "step[1].slash: Warden has no command /jit reqest (did you mean 'jit request'?)",
        "step[2].options.scop: /jit request has no option 'scop' (did you mean 'scope'?)",
        "step[2].options.durration: /jit request has no option 'durration' (did you mean 'duration'?)",
        "step[3].slash: Warden has no command /warden docter (did you mean 'warden doctor'?)",
        "✗ failed: stopped before step 1, 3 steps not run",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    assert "alice: /jit" not in text  # nothing was played
