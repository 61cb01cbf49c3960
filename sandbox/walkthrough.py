"""`warden sandbox`: the real bot against a local Discord, with a guided walkthrough or scenario files.

With no arguments it plays :data:`WALKTHROUGH` (a scenario, run by the same code as any
scenario file) against ``config.example.toml`` and the ACME server: a request, two
approvals, the grant, the reminder, the expiry and a refused request. Nothing leaves the
machine: the sandbox listens on 127.0.0.1 and the database is a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.policy import PolicyError, load_policy
from sandbox.harness import EXAMPLE_CONFIG
from sandbox.scenario import ScenarioError, parse_scenario, run_all

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

NEXT_STEPS = """\
What to try next
  • Play a scenario file:   warden sandbox --scenario examples/scenarios/deny-with-reason.toml
  • Write your own:         the format is in docs/scenarios.md (examples in examples/scenarios/)
  • Try your policy here:   warden sandbox --config config.toml
  • Run it for real:        copy config.example.toml to config.toml, set WARDEN_TOKEN, then `warden run`
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
    """Entry point of `warden sandbox`; returns the exit status (0 only if everything held)."""
    stream = stream or sys.stdout
    configure_cli_logging(bool(getattr(args, "verbose", False)))
    quiet = bool(getattr(args, "quiet", False))
    files = list(getattr(args, "scenario", None) or [])
    if files:
        return run_all(files, quiet=quiet, stream=stream)
    config = getattr(args, "config", None)
    try:
        if config:
            load_policy(config)  # report a bad policy plainly, before anything starts
        scenario = parse_scenario(walkthrough_data(config), "walkthrough", Path.cwd())
    except (PolicyError, ScenarioError) as e:
        print(f"warden sandbox: {e}", file=sys.stderr)
        return 2
    status = run_all([scenario], quiet=quiet, stream=stream)
    if not quiet:
        print(NEXT_STEPS, file=stream, end="", flush=True)
    return status
