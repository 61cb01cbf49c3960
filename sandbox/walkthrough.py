"""`warden sandbox`: the real bot against a local Discord, with a guided walkthrough or scenario files.

With no arguments it plays :data:`WALKTHROUGH` (a scenario, run by the same code as any
scenario file) against ``config.example.toml`` and the ACME server: a request, two
approvals, the grant, the reminder, the expiry and a refused request. Nothing leaves the
machine: the sandbox listens on 127.0.0.1 and the database is a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from bot.policy import PolicyError, load_policy, parse_policy
from sandbox.harness import EXAMPLE_CONFIG, Cast, rehearsal_server
from sandbox.scenario import GivenPolicy, ScenarioError, parse_scenario, run_all

# The walkthrough, in the scenario format (docs/scenarios.md); the policy is filled in at run time.
WALKTHROUGH: dict[str, Any] = {
    "name": "Walkthrough: request → two approvals → grant → reminder → expiry",
    "description": (
        "The ACME server from config.example.toml. `deploy` needs two approvals from @sec-leads,\n"
        "lasts at most 8h and reminds the holder 15 minutes before it ends."
    ),
    "step": [
        {
            "note": "alice (an engineer) asks for deploy access for two hours",
            "as": "alice",
            "slash": "jit request",
            "options": {"scope": "deploy", "duration": "2h", "reason": "release 4.2"},
            "expect_reply": "waiting for approval",
        },
        {
            "note": "bob (sec-leads) approves on the card in #approvals",
            "as": "bob",
            "click": "Approve",
            "on": {"channel": "approvals", "contains": "Access request #1"},
            "expect_reply": "counted (1 of 2)",
            "expect": [{"member": "alice", "lacks_role": "deployers"}],
        },
        {
            "note": "carol's approval makes the quorum: Warden adds the role and tells alice",
            "as": "carol",
            "click": "Approve",
            "on": {"channel": "approvals", "contains": "Access request #1"},
            "expect": [
                {"member": "alice", "has_role": "deployers"},
                {"channel": "approvals", "message_contains": ["Access request #1", "Granted until"]},
                {"dm": "alice", "message_contains": "is yours"},
            ],
        },
        {
            "note": "1h46m later: 14 minutes are left, so alice gets a reminder",
            "advance": "1h46m",
            "expect": [
                {"dm": "alice", "message_contains": "Reminder: your access"},
                {"member": "alice", "has_role": "deployers"},
            ],
        },
        {
            "note": "two hours after the grant, the access ends by itself",
            "advance": "14m",
            "expect": [
                {"member": "alice", "lacks_role": "deployers"},
                {"dm": "alice", "message_contains": "has ended"},
                {"narrative": "Access expired"},
            ],
        },
        {
            "note": "erin is not an engineer: she may not request deploy, and nothing is posted",
            "as": "erin",
            "slash": "jit request",
            "options": {"scope": "deploy", "duration": "1h", "reason": "curious"},
            "expect_reply": "You may not request `deploy`",
            "expect": [{"channel": "approvals", "no_message_contains": "Access request #2"}],
        },
        {
            "note": "every decision is in the signed ledger and narrated in #governance",
            "expect": [
                {"narrative": "Access granted"},
                {"ledger": "verifies"},
            ],
        },
    ],
}

# ----------------------------------------------------------------------------- any policy


def _compact(delta: dt.timedelta) -> str:
    """A duration as the scenario format writes it: 1h46m, 45s."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def _access(cast: Cast, member: str, held: bool) -> list[dict[str, Any]]:
    """What the server shows while the access is held (or after): a role, an overwrite, or nothing
    for a token (it lives outside Discord)."""
    key = {"role": ("has_role", "lacks_role"), "channel": ("has_overwrite", "lacks_overwrite")}.get(
        cast.scope.kind
    )
    return [] if key is None else [{"member": member, key[0 if held else 1]: cast.target}]


def _given_dm(cast: Cast, member: str) -> dict[str, Any]:
    s = cast.scope
    if s.kind == "token":  # delivered once, by DM (the transcript shows only its first line)
        return {"dm": member, "message_contains": [f"**{s.id}** in", "your access token"]}
    return {"dm": member, "message_contains": f"**{s.id}** is yours"}


class _Story:
    """The steps of a policy's walkthrough, with the virtual time and the numbers Warden will give."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.now = dt.timedelta(0)
        self.requests = 0  # request #n and grant #n as Warden numbers them (one database, in order)
        self.grants = 0
        self.asked: dict[str, dt.timedelta] = {}  # member → when they last asked (for request_cooldown)

    def step(self, guild: str, **step: Any) -> None:
        self.steps.append({"guild": guild, **step})

    def advance(self, guild: str, delta: dt.timedelta, note: str, expect: list[dict[str, Any]]) -> None:
        self.now += delta
        self.step(guild, note=note, advance=_compact(delta), expect=expect)

    def doctor(self, guild: str) -> None:
        self.step(
            guild,
            note=f"{guild}: the owner asks /warden doctor whether Warden can do everything the policy asks",
            **{"as": "owner"},
            slash="warden doctor",
            expect_reply="everything checks out",
        )

    def scope(self, cast: Cast) -> None:
        s, g = cast.scope, cast.guild
        holder = cast.subject or cast.requester
        what = {
            "role": f"the role {cast.target}",
            "channel": f"{' '.join(sorted(s.allow | s.deny))} on #{cast.target}",
        }.get(s.kind, "an access token")
        reminder = cast.policy.expiry_reminder
        if s.breakglass:
            length = s.default_duration
        else:
            length = s.default_duration
            if cast.auto_limit is not None and length <= cast.auto_limit < s.max_duration:
                length = min(s.max_duration, cast.auto_limit + dt.timedelta(hours=1))  # votes, not auto
            if reminder and length <= reminder:
                length = min(s.max_duration, 2 * reminder)
        self._wait_cooldown(cast, cast.requester)
        granted = [*_access(cast, holder, True), {"narrative": "Access granted"}]
        if cast.subject is None:
            granted.append(_given_dm(cast, holder))
        self.requests += 1
        if s.breakglass:
            self.grants += 1
            review = f"Break-glass review — grant #{self.grants}"
            self.step(
                g,
                note=f"`{s.id}` ({what}) is break-glass: {cast.requester} takes it at once",
                **{"as": cast.requester},
                slash="jit breakglass",
                options={"scope": s.id, "reason": f"rehearsing {s.id}"},
                expect_reply="Break-glass",
                expect=[*granted, {"channel": cast.approvals, "message_contains": review}],
            )
            if cast.approvers:
                self.step(
                    g,
                    note=f"{cast.approvers[0]} (an approver) reviews the use afterwards",
                    **{"as": cast.approvers[0]},
                    click="Acknowledge review",
                    on={"channel": cast.approvals, "contains": review},
                    expect=[
                        {"channel": cast.approvals, "message_contains": f"Reviewed by @{cast.approvers[0]}"}
                    ],
                )
        else:
            self._request_and_votes(cast, length, what, granted)
        if reminder and length > reminder:
            early = min(dt.timedelta(minutes=1), reminder / 2)
            self.advance(
                g,
                length - reminder + early,
                f"{_compact(reminder - early)} before the end, the reminder falls due"
                + ("" if cast.subject else f": {holder} gets a DM"),
                _access(cast, holder, True)
                + (
                    [{"dm": holder, "message_contains": f"Reminder: your access **{s.id}**"}]
                    if cast.subject is None
                    else []
                ),
            )
            rest = reminder - early
        else:
            rest = length
            self.step(
                g,
                note=f"no reminder for `{s.id}`: expiry_reminder is {_compact(reminder)} and the grant lasts {_compact(length)}",
            )
        ended = [*_access(cast, holder, False), {"narrative": "Access expired"}]
        if cast.subject is None:
            ended.append({"dm": holder, "message_contains": [f"Your access **{s.id}**", "has ended"]})
        self.advance(g, rest, f"{_compact(length)} after the grant, `{s.id}` ends by itself", ended)
        self._refusal(cast, length)
        if cast.auto_member is not None and cast.auto_length is not None and not s.breakglass:
            self._auto(cast, cast.auto_member, cast.auto_length)

    def _auto(self, cast: Cast, member: str, length: dt.timedelta) -> None:
        """auto_approve: a member of its role asks within its limit and gets the scope without votes."""
        s, g, rule = cast.scope, cast.guild, cast.scope.auto_approve[0]
        self._wait_cooldown(cast, member)
        self.requests += 1
        self.grants += 1
        self.step(
            g,
            note=f"{member} is a member of {rule.members_of}: up to {_compact(rule.max_duration)} needs no votes",
            **{"as": member},
            slash="jit request",
            options={"scope": s.id, "duration": _compact(length), "reason": f"rehearsing {s.id}"},
            expect_reply="approved automatically",
            expect=[
                *_access(cast, member, True),
                _given_dm(cast, member),
                {"narrative": "Request auto-approved"},
            ],
        )
        self.advance(g, length, f"{_compact(length)} later it ends", _access(cast, member, False))

    def _wait_cooldown(self, cast: Cast, member: str) -> None:
        """request_cooldown: a member asks again only after it (virtual time is known in advance)."""
        cooldown = cast.policy.request_cooldown
        wait = cooldown - (self.now - self.asked.get(member, -cooldown))
        if wait > dt.timedelta(0):
            self.advance(cast.guild, wait, f"{member} waits out request_cooldown ({_compact(cooldown)})", [])
        self.asked[member] = self.now

    def _request_and_votes(
        self, cast: Cast, length: dt.timedelta, what: str, granted: list[dict[str, Any]]
    ) -> None:
        s, g, n = cast.scope, cast.guild, self.requests
        options = {"scope": s.id, "duration": _compact(length), "reason": f"rehearsing {s.id}"}
        if cast.subject is not None:
            options["for"] = cast.subject
        card = f"Access request #{n} — {s.id}"
        auto = cast.auto_limit is not None and length <= cast.auto_limit
        who = f"{cast.requester} asks for `{s.id}` ({what}) for {_compact(length)}"
        if cast.subject is not None:
            who += f" for the bot {cast.subject}"
        request: dict[str, Any] = {"as": cast.requester, "slash": "jit request", "options": options}
        if auto:
            self.grants += 1
            self.step(
                g,
                note=f"{who}; the policy approves it automatically",
                **request,
                expect_reply="approved automatically",
                expect=granted,
            )
            return
        quorum = s.approvals_required
        if len(cast.approvers) < quorum:
            self.step(
                g,
                note=f"⚠ only {len(cast.approvers)} approver(s) besides {cast.requester} can vote on `{s.id}`: "
                f"its quorum of {quorum} can never be reached (the steps below fail)",
            )
        self.step(
            g,
            note=f"{who}; {quorum} approval{'s' if quorum != 1 else ''} needed",
            **request,
            expect_reply="waiting for approval",
            expect=[{"channel": cast.approvals, "message_contains": card}],
        )
        for i, approver in enumerate(cast.approvers, start=1):
            vote: dict[str, Any] = {
                "as": approver,
                "click": "Approve",
                "on": {"channel": cast.approvals, "contains": card},
            }
            if i < quorum:
                self.step(g, note=f"{approver} approves", **vote, expect_reply=f"counted ({i} of {quorum})")
            else:
                self.grants += 1
                self.step(
                    g,
                    note=f"{approver}'s approval makes the quorum: Warden grants it",
                    **vote,
                    expect=[
                        *granted,
                        {"channel": cast.approvals, "message_contains": [card, "Granted until"]},
                    ],
                )

    def _refusal(self, cast: Cast, length: dt.timedelta) -> None:
        s, g = cast.scope, cast.guild
        options: dict[str, Any] = {"scope": s.id, "duration": _compact(length), "reason": "just curious"}
        if cast.subject is not None:
            options["for"] = cast.subject
        nothing = [
            {"channel": cast.approvals, "no_message_contains": f"Access request #{self.requests + 1} —"}
        ]
        if cast.outsider is not None:
            self.step(
                g,
                note=f"{cast.outsider} is not among `{s.id}`'s requesters: refused, and nothing is posted",
                **{"as": cast.outsider},
                slash="jit request",
                options=options,
                expect_reply=f"You may not request `{s.id}`",
                expect=nothing,
            )
            return
        options["duration"] = _compact(s.max_duration + dt.timedelta(hours=1))
        self.step(
            g,
            note=f"everyone may request `{s.id}`, but not for longer than {_compact(s.max_duration)}: refused",
            **{"as": cast.requester},
            slash="jit request",
            options=options,
            expect_reply="is longer than",
            expect=nothing,
        )


def policy_walkthrough(config: str | Path | Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """The walkthrough for any policy: a server built from it, and every scope played through.

    ``config`` is a policy file, or a policy already parsed from TOML (then ``source`` names it).
    """
    policy_value: str | dict[str, Any]
    if isinstance(config, Mapping):
        policy_value = dict(config)
        policy = parse_policy(policy_value, source or "<policy>")
    else:
        policy, source, policy_value = load_policy(config), str(config), str(Path(config).resolve())
    rehearsal = rehearsal_server(policy)
    story = _Story()
    for guild in rehearsal.guilds:
        story.doctor(guild["name"])
        for cast in rehearsal.casts:
            if cast.guild == guild["name"]:
                story.scope(cast)
    story.step(
        rehearsal.guilds[0]["name"],
        note="every decision is in the signed ledger, and every call Warden made matched Discord's API",
        expect=[{"ledger": "verifies"}, {"conformance": "ok"}],
    )
    cast_lines = []
    for c in rehearsal.casts:
        line = f"  `{c.scope.id}` in {c.guild}: {c.requester} asks"
        if c.subject:
            line += f" for {c.subject}"
        if c.approvers:
            verb = "review" if c.scope.breakglass else "approve"
            line += f"; {', '.join(c.approvers)} {verb}{'s' if len(c.approvers) == 1 else ''}"
        line += f"; {c.outsider} may not" if c.outsider else "; everyone may ask"
        cast_lines.append(line)
    servers = ", ".join(g["name"] for g in rehearsal.guilds)
    return {
        "name": f"Rehearsal of {source}: every scope, in a server built from the policy",
        "description": (
            f"A rehearsal server built from the policy: {servers}.\n"
            "Every role and channel it names exists, by name or with the id it gives (then named after\n"
            "its first use), and each role has invented members. For every scope: a request, the\n"
            "approvals, the grant, the reminder, the expiry and a refused request. Who plays what:\n"
            + "\n".join(cast_lines)
        ),
        "policy": policy_value,
        "guild": rehearsal.guilds,
        "step": story.steps,
    }


NEXT_STEPS = """\
What to try next
  • Play a scenario file:   warden sandbox --scenario examples/scenarios/deny-with-reason.toml
  • Write your own:         the format is in docs/scenarios.md (examples in examples/scenarios/)
  • Try your policy here:   warden sandbox --config config.toml
  • Run it for real:        copy config.example.toml to config.toml, set WARDEN_TOKEN, then `warden run`
"""


def _next_steps_for(config: str) -> str:
    return f"""\
What to try next
  • Your own story on it:   warden sandbox --config {config} --scenario mine.toml
                            (no [[guild]] in mine.toml: it plays in this server, with these names;
                            the format is in docs/scenarios.md)
  • Check it once more:     warden check-config --config {config}
  • Run it for real:        set WARDEN_TOKEN, then `warden run --config {config}`
"""


class _Noise(logging.Filter):
    """discord.py's start-up notes that mean nothing in the sandbox (no voice support, etc.)."""

    WORDS = ("PyNaCl", "davey", "voice will NOT be supported", "We are being rate limited")

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "warden_in_transcript", False):
            return False  # already shown under the step that caused it
        msg = record.getMessage()
        return not any(w in msg for w in self.WORDS)


def configure_cli_logging(verbose: bool = False) -> None:
    """Transcripts go to stdout; logs only when they matter (warnings are shown in the transcript)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Noise())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if verbose:
        root.setLevel(logging.INFO)
        for name in ("discord", "bot"):
            logging.getLogger(name).setLevel(logging.INFO)
        return
    root.setLevel(logging.WARNING)
    # Warnings from Warden and discord.py are shown inside the transcript, under the step that
    # caused them; on stderr only errors appear.
    handler.setLevel(logging.ERROR)
    for name in ("discord", "bot"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def walkthrough_data(config: str | Path | None = None) -> dict[str, Any]:
    data = dict(WALKTHROUGH)
    data["policy"] = str(Path(config) if config else EXAMPLE_CONFIG)
    return data


def main(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Entry point of `warden sandbox`; returns the exit status (0 only if everything held).

    No arguments: the ACME walkthrough. ``--config``: the walkthrough of that policy, in a server
    built from it. ``--scenario``: the files; with ``--config`` they play that policy instead of
    their own (and in the server built from it, when they describe none).
    """
    stream = stream or sys.stdout
    configure_cli_logging(bool(getattr(args, "verbose", False)))
    quiet = bool(getattr(args, "quiet", False))
    files = list(getattr(args, "scenario", None) or [])
    config = getattr(args, "config", None)
    try:
        policy = load_policy(config) if config else None  # a bad policy, plainly, before anything starts
        if files:
            given = GivenPolicy(policy, str(config)) if policy is not None else None
            return run_all(files, quiet=quiet, stream=stream, given=given)
        data = policy_walkthrough(config) if config else walkthrough_data()
        scenario = parse_scenario(data, "walkthrough", Path.cwd())
    except PolicyError as e:
        n = len(e.problems)
        lines = "".join(f"\n  - {p}" for p in e.problems)
        print(f"warden sandbox: {config} has {n} problem{'s' if n != 1 else ''}:{lines}", file=sys.stderr)
        return 2
    except ScenarioError as e:
        print(f"warden sandbox: {e}", file=sys.stderr)
        return 2
    status = run_all([scenario], quiet=quiet, stream=stream)
    if not quiet:
        print(NEXT_STEPS if not config else _next_steps_for(config), file=stream, end="", flush=True)
    return status
