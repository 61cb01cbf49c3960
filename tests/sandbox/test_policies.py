"""`warden sandbox --config` rehearses any valid policy: a server built from what it names, every scope
played through, /warden doctor shown whole; `--scenario` with `--config` plays that policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.policy import load_policy, review_policy
from sandbox.harness import rehearsal_server

ROOT = Path(__file__).resolve().parents[2]
POLICIES = [
    ROOT / "config.example.toml",
    ROOT / "examples" / "policies" / "gaming-community.toml",
    ROOT / "examples" / "policies" / "company-ids.toml",
]


def _sandbox(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("WARDEN_TOKEN", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str]]:
    """Each policy rehearsed by the real command, in a fresh process (run side by side)."""
    cwd = tmp_path_factory.mktemp("rehearsals")
    procs = {p.stem: _sandbox("--config", str(p), cwd=cwd) for p in POLICIES}
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=240)
        out[name] = (proc.returncode, stdout, stderr)
    return out


@pytest.mark.parametrize("policy", POLICIES, ids=[p.stem for p in POLICIES])
def test_every_scope_is_rehearsed(policy: Path, transcripts: dict[str, tuple[int, str, str]]) -> None:
    status, out, err = transcripts[policy.stem]
    assert status == 0, out + err
    assert "✓ passed" in out and "✗" not in out, out
    assert "Traceback" not in err
    loaded = load_policy(policy)
    assert review_policy(loaded) == []  # `warden check-config` has nothing to say about it
    rehearsal = rehearsal_server(loaded)
    for guild in rehearsal.guilds:
        # /warden doctor in every server, its report whole: one line per section.
        assert f"**Warden doctor — {guild['name']}**: everything checks out." in out
    for cast in rehearsal.casts:
        s = cast.scope
        assert f"       ✅ scope `{s.id}` ({s.kind})\n" in out, s.id
        holder = cast.subject or cast.requester
        if s.kind == "role":
            assert f"✓ {holder} has role {cast.target}" in out, s.id
            assert f"✓ {holder} does not have role {cast.target}" in out, s.id
        elif s.kind == "channel":
            assert f"✓ {holder} has overwrite on #{cast.target}" in out, s.id
            assert f"✓ {holder} has no overwrite on #{cast.target}" in out, s.id
        else:  # a token: delivered once by DM, nothing changes in the server
            assert f"✓ {holder}'s DMs: a message says '**{s.id}** in' + 'your access token'" in out, s.id
        if s.breakglass:
            assert f"{cast.requester}: /jit breakglass scope={s.id}" in out
            assert f"✓ #{cast.approvals}: a message says 'Reviewed by @{cast.approvers[0]}'" in out
        else:
            # the quorum: every approver's click, the last one completing it
            for approver in cast.approvers:
                assert f"{approver} clicks Approve on" in out, (s.id, approver)
            assert "Your approval completed the quorum" in out
        if cast.subject is None:
            assert f"Reminder: your access **{s.id}**" in out, s.id
        assert f"`{s.id}` ends by itself" in out
        refusal = f"You may not request `{s.id}`" if cast.outsider else f"is longer than `{s.id}` allows"
        assert refusal in out, s.id
    assert "✓ the ledger verifies" in out
    assert "✓ every request Warden made matched Discord's API" in out
    assert (
        f"warden sandbox --config {policy} --scenario mine.toml" in out
    )  # what to try next, for this policy


def test_a_policy_by_ids_gets_a_server_with_those_ids(transcripts: dict[str, tuple[int, str, str]]) -> None:
    policy = load_policy(ROOT / "examples" / "policies" / "company-ids.toml")
    rehearsal = rehearsal_server(policy)
    prod, staging = rehearsal.guilds
    assert prod["id"] == 1146049323987443712 and staging["name"] == "acme-staging"
    role_ids = {r.get("id") for r in prod["roles"]}
    channel_ids = {c.get("id") for c in prod["channels"]}
    assert {1146049500000000001, 1146049500000000002, 1146049500000000003} <= role_ids
    assert {1146049400000000001, 1146049400000000002, 1146049400000000003} <= channel_ids
    assert {"name": "user-1146049600000000001", "id": 1146049600000000001, "roles": []} in prod["members"]
    cast = next(c for c in rehearsal.casts if c.scope.id == "prod-db")
    assert cast.approvers == ("prod-db-approvers-1", "user-1146049600000000001")  # a role and a person
    bot = next(c for c in rehearsal.casts if c.scope.id == "ci-webhooks")
    assert bot.subject == "ci-webhooks-bot"
    out = transcripts["company-ids"][1]
    assert "user-1146049600000000001 clicks Approve" in out
    assert (
        "prod-db-requesters-1: /jit request scope=ci-webhooks duration=4h reason=rehearsing ci-webhooks for=ci-webhooks-bot"
        in out
    )
    assert "acme-staging: the owner asks /warden doctor" in out


def test_two_approver_groups_both_count(transcripts: dict[str, tuple[int, str, str]]) -> None:
    out = transcripts["gaming-community"][1]
    assert "(only moderators-1) Your approval of request #1 is counted (1 of 2)." in out
    assert "(only event-team-1) Your approval completed the quorum" in out
    # auto_approve: a regular gets the DJ role without votes
    assert "Request #4 was approved automatically (scope.dj.auto_approve[0])" in out


SCENARIO = """
name = "My own story on my own policy"

[[step]]
as = "members-1"
slash = "jit request"
options = { scope = "dj", duration = "2h", reason = "party" }
expect_reply = "waiting for approval"

[[step]]
as = "moderators-1"
click = "Approve"
on = { channel = "mod-queue", contains = "Access request #1" }
expect = [{ member = "members-1", has_role = "DJ" }]
"""


def test_scenario_with_config_plays_that_policy(tmp_path: Path) -> None:
    story = tmp_path / "story.toml"
    story.write_text(SCENARIO, encoding="utf-8")
    own = tmp_path / "own.toml"  # a scenario with its own policy and server: --config replaces the policy
    own.write_text((ROOT / "examples" / "scenarios" / "custom-server.toml").read_text(encoding="utf-8"))
    gaming = str(ROOT / "examples" / "policies" / "gaming-community.toml")
    proc = _sandbox("--scenario", str(story), "--config", gaming, cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert f"policy: {gaming} (from --config; it names none), played in the server built from it" in out
    assert "✓ members-1 has role DJ" in out
    # Without --config the same file plays the built-in ACME server, where nobody is called members-1.
    proc = _sandbox("--scenario", str(story), cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "step[1].as: no member named 'members-1' in acme" in out
    proc = _sandbox("--scenario", str(own), "--config", gaming, cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert "(from --config; its own policy is not used), played in the file's own [[guild]] server" in out


def test_a_bad_policy_is_one_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[guild.x]\napprovals_channel = "a"\n', encoding="utf-8")
    for args in (("--config", str(bad)), ("--config", str(bad), "--scenario", "whatever.toml")):
        proc = _sandbox(*args, cwd=tmp_path)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2
        assert err.startswith(f"warden sandbox: {bad} has 1 problem:\n  - guild.x.governance_channel"), err
        assert "Traceback" not in err and out == ""


ODD = """
[guild.odd]
approvals_channel = 1146049400000000011
governance_channel = "#audit-log"
expiry_reminder = "0s"
request_cooldown = "3h"
max_pending_per_member = 1

[guild.1146049323987443799]
approvals_channel = "approvals"
governance_channel = "approvals"
expiry_reminder = "2h"

[scope.users-only]
guild = "odd"
kind = "role"
role = "vault"
max_duration = "2h"
approvers = ["user:1146049600000000011", "user:1146049600000000012"]
approvals_required = 2
requesters = ["user:1146049600000000013"]

[scope.everyone-auto]
guild = "odd"
kind = "role"
role = "@helpers"
max_duration = "1h"
approvers = ["mods"]
requesters = ["@everyone"]
auto_approve = [{ members_of = "@everyone", max_duration = "1h" }]

[scope.mute]
guild = "odd"
kind = "channel"
channel = "#general-chat"
deny = ["send_messages"]
max_duration = "30m"
approvers = ["mods"]
approvals_required = 3
requesters = ["mods", "muted"]
subjects = "both"
reason_required = false

[scope.short]
guild = "1146049323987443799"
kind = "role"
role = 1146049500000000021
max_duration = "1h"
approvers = [1146049500000000022]
requesters = [1146049500000000021, 1146049500000000023]
"""


def test_an_odd_policy_is_rehearsed_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In process, through the CLI entry: only named users approve and ask; everything auto-approved;
    a deny-only channel scope whose requesters approve (the requester never counts); no reminders
    (0s, and longer than the grant); a cooldown longer than a grant; a requester role that is also
    the role granted (someone else must ask); a server by id whose two channels are one."""
    from bot.cli import main

    path = tmp_path / "odd.toml"
    path.write_text(ODD, encoding="utf-8")
    status = main(["sandbox", "--config", str(path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "✗" not in out and "✓ passed" in out
    assert "(only user-1146049600000000012) Your approval completed the quorum" in out
    assert "newcomer: /jit request scope=everyone-auto" in out and "was approved automatically" in out
    assert "newcomer waits out request_cooldown (3h)" in out
    assert "(only mods-4) Your approval completed the quorum" in out  # mods-1 asked: three others
    assert "no reminder for `short`: expiry_reminder is 2h and the grant lasts 1h" in out
    assert "short-requesters-1: /jit request scope=short" in out  # not a holder of the role itself


def test_a_quorum_that_can_never_be_reached_fails_the_rehearsal_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    path = tmp_path / "stuck.toml"
    path.write_text(
        """
[guild.q]
approvals_channel = "approvals"
governance_channel = "governance"

[scope.stuck]
kind = "role"
role = "vault"
max_duration = "2h"
approvers = ["user:1146049600000000011", "user:1146049600000000012"]
approvals_required = 2
requesters = ["user:1146049600000000011"]
""",
        encoding="utf-8",
    )
    assert main(["sandbox", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "⚠ only 1 approver(s) besides user-1146049600000000011 can vote on `stuck`" in out
    assert "✗ expected user-1146049600000000011 to have role vault" in out
