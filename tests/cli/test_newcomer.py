"""Errors a newcomer meets, through the `warden` command as an operator runs it (a subprocess)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import EXAMPLE, REPO


def warden(cwd: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    environ["PYTHONPATH"] = str(REPO) + os.pathsep + environ.get("PYTHONPATH", "")
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=environ,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _policy(tmp_path: Path, old: str = "", new: str = "", *, append: str = "") -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    if old:
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / "config.toml"
    path.write_text(text + append, encoding="utf-8")
    return path


# ------------------------------------------------------------------ unsupported databases

UNSUPPORTED = [
    ("mysql://warden:hunter2@db/warden", "database 'mysql' is not supported"),
    ("mongodb://db/warden", "database 'mongodb' is not supported"),
    ("sqlite:///:memory:", "in-memory database"),
    ("sqlite+aiosqlite://", "in-memory database"),
]


@pytest.mark.parametrize(("url", "said"), UNSUPPORTED)
@pytest.mark.parametrize("command", ["run", "migrate"])
def test_unsupported_database_url_in_the_environment(
    tmp_path: Path, command: str, url: str, said: str
) -> None:
    r = warden(tmp_path, command, "--config", str(EXAMPLE), WARDEN_TOKEN="x" * 30, WARDEN_DATABASE_URL=url)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "hunter2" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("warden: WARDEN_DATABASE_URL: ") and said in lines[0]
    assert "SQLite" in lines[0] and "PostgreSQL" in lines[0]


@pytest.mark.parametrize(("url", "said"), UNSUPPORTED)
@pytest.mark.parametrize("command", ["check-config", "run", "migrate"])
def test_unsupported_database_url_in_the_policy(tmp_path: Path, command: str, url: str, said: str) -> None:
    cfg = _policy(tmp_path, 'database_url = "sqlite+aiosqlite:///warden.db"', f'database_url = "{url}"')
    r = warden(tmp_path, command, "--config", str(cfg), WARDEN_TOKEN="x" * 30)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "hunter2" not in r.stderr
    assert "warden.database_url: " in r.stderr and said in r.stderr


def test_check_config_validates_the_warden_table(tmp_path: Path) -> None:
    cfg = _policy(
        tmp_path,
        'log_level = "INFO"',
        'log_level = "loud"\nlog_format = "xml"\nhealth_port = 99999\nhealth_host = "http://x"\ncolour = 1',
    )
    r = warden(tmp_path, "check-config", "--config", str(cfg))
    assert r.returncode == 2
    for said in (
        "warden.log_level: 'loud' is not allowed",
        "warden.log_format: 'xml' is not allowed; use one of: text, json",
        "warden.health_port: 99999 is too large",
        "warden.health_host: 'http://x' is not a host name or IP address",
        "warden: unknown key 'colour'",
    ):
        assert said in r.stderr, r.stderr


# ------------------------------------------------------------------ realistic id mistakes


def test_check_config_flags_short_ids_mentions_and_case_twins(tmp_path: Path) -> None:
    cfg = _policy(
        tmp_path,
        'approvals_channel = "approvals"',
        'approvals_channel = "<#123456789012345678>"',
        append=(
            '\n[scope.Deploy]\nkind = "role"\nrole = 12345\nmax_duration = "1h"\n'
            'approvers = ["<@&223456789012345678>", "user:42"]\nrequesters = ["<@323456789012345678>"]\n'
        ),
    )
    r = warden(tmp_path, "check-config", str(cfg))
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr
    assert (
        "guild.acme.approvals_channel: '<#123456789012345678>' is Discord channel mention syntax; write the bare id 123456789012345678"
        in err
    )
    assert (
        "scope.Deploy.approvers[0]: '<@&223456789012345678>' is Discord role mention syntax; write the bare id 223456789012345678"
        in err
    )
    assert "scope.Deploy.requesters[0]: '<@323456789012345678>' is Discord user mention syntax" in err
    assert "scope.Deploy.role: 12345 is too short to be a Discord id (ids have 17 to 20 digits)" in err
    assert "scope.Deploy.approvers[1]: 42 is too short" in err
    assert "scope.Deploy: differs from scope.deploy only by case" in err
    assert "Traceback" not in err


def test_check_config_accepts_real_ids(tmp_path: Path) -> None:
    cfg = _policy(tmp_path, 'approvals_channel = "approvals"', "approvals_channel = 123456789012345678")
    r = warden(tmp_path, "check-config", "--config", str(cfg))
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------ audit rules in force


def test_check_config_counts_the_audit_rules_in_force(tmp_path: Path) -> None:
    r = warden(tmp_path, "check-config", "--config", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    ok, rules = r.stdout.strip().splitlines()
    assert "OK" in ok
    # The example's bot-added replaces the default of that name: 3 own + 10 defaults.
    assert rules.startswith("13 audit rules active (3 from the policy: ")
    assert "admin-permission-added, bot-added, webhook-created" in rules
    assert "10 defaults" in rules
    assert "not enforced" not in r.stdout.lower() + r.stderr.lower()


def test_run_says_which_audit_rules_are_active(tmp_path: Path) -> None:
    r = warden(
        tmp_path,
        "run",
        "--config",
        str(EXAMPLE),
        WARDEN_TOKEN="sandbox-token-abcdef",
        WARDEN_DISCORD_API_URL="http://127.0.0.1:1/api/v10",
        WARDEN_DISCORD_GATEWAY_URL="ws://127.0.0.1:1/",
        WARDEN_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
        WARDEN_SIGNING_KEY=str(tmp_path / "k.pem"),
    )
    assert r.returncode == 2
    line = next(line for line in r.stderr.splitlines() if "audit rules active" in line)
    assert "13 audit rules active" in line and "admin-permission-added, bot-added, webhook-created" in line
    assert "not enforced" not in r.stderr.lower()


# ------------------------------------------------------------------ version, init, --config, audit


def test_version(tmp_path: Path) -> None:
    r = warden(tmp_path, "--version")
    assert r.returncode == 0
    assert re.fullmatch(r"warden \S+.*\n", r.stdout), r.stdout


def test_init_writes_the_example_and_refuses_to_overwrite(tmp_path: Path) -> None:
    r = warden(tmp_path, "init")
    assert r.returncode == 0, r.stderr
    written = tmp_path / "config.toml"
    assert written.read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")
    assert "check-config" in r.stdout
    written.write_text("# mine\n", encoding="utf-8")
    r = warden(tmp_path, "init", ".")
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr
    assert written.read_text(encoding="utf-8") == "# mine\n"
    (tmp_path / "sub").mkdir()
    assert warden(tmp_path, "init", "sub").returncode == 0
    assert warden(tmp_path, "check-config", "--config", "sub/config.toml").returncode == 0
    r = warden(tmp_path, "init", "missing-dir")
    assert r.returncode == 2 and "not a directory" in r.stderr


def test_example_config_ships_in_the_package() -> None:
    from importlib.resources import files

    shipped = (files("bot.data") / "config.example.toml").read_text(encoding="utf-8")
    assert shipped == EXAMPLE.read_text(encoding="utf-8")


def test_check_config_accepts_config_flag_and_positional(tmp_path: Path) -> None:
    assert warden(tmp_path, "check-config", "--config", str(EXAMPLE)).returncode == 0
    assert warden(tmp_path, "check-config", str(EXAMPLE)).returncode == 0
    r = warden(tmp_path, "check-config", "a.toml", "--config", "b.toml")
    assert r.returncode == 2 and "give one" in r.stderr


def test_missing_config_points_at_init(tmp_path: Path) -> None:
    r = warden(tmp_path, "check-config")
    assert r.returncode == 2 and "warden init" in r.stderr


def test_bare_audit_lists_its_subcommands(tmp_path: Path) -> None:
    r = warden(tmp_path, "audit")
    assert r.returncode == 2
    assert "verify" in r.stdout and "export" in r.stdout
    assert "Traceback" not in r.stderr and "required" not in r.stderr


# ------------------------------------------------------------------ the README's auditor commands


def _readme_audit_commands() -> list[list[str]]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Audit evidence", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            commands.append(shlex.split(line))
    return commands


async def test_readme_audit_commands_work_as_written(tmp_path: Path, session_factory, clock) -> None:
    """Each command of the README's block, verbatim, in order, on a ledger with entries."""
    import asyncio

    from bot.controls import ControlMap
    from bot.decisions.service import Decision, DecisionService, Outcome
    from bot.ledger import Signer

    key = tmp_path / "warden-signing.key"
    decisions = DecisionService(Signer.from_file(key, create=True), ControlMap.load_default(), clock)
    async with session_factory() as session, session.begin():
        for i in range(3):
            await decisions.record(
                session,
                Decision(Outcome.REQUESTED, "scope.deploy", f"request {i}", guild_id=1, proof={"n": i}),
            )
    url = str(session_factory.kw["bind"].url.render_as_string(hide_password=False))
    commands = _readme_audit_commands()
    assert [c[:3] for c in commands] == [
        ["warden", "audit", "verify"],
        ["warden", "audit", "checkpoint"],
        ["warden", "audit", "export"],
        ["warden", "audit", "verify"],
        ["warden", "audit", "verify"],
        ["warden", "audit", "report"],
    ]
    for argv in commands:
        assert argv[0] == "warden"
        r = await asyncio.to_thread(
            warden, tmp_path, *argv[1:], WARDEN_DATABASE_URL=url, WARDEN_SIGNING_KEY=str(key)
        )
        assert r.returncode == 0, (argv, r.stdout, r.stderr)
        assert "OK" in r.stdout or "wrote" in r.stdout.lower() or "export" in r.stdout.lower(), r.stdout
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "request 2" in html and "<svg" in html  # the decisions, and charts drawn inline


# ------------------------------------------------------------------ the README's first real run


def _readme_block(heading: str) -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split(heading, 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


async def test_readme_run_it_for_real_works_as_written(tmp_path: Path) -> None:
    """`warden init`, `warden check-config --config config.toml`, `WARDEN_TOKEN=… warden run --config
    config.toml`, verbatim in an empty directory; only the token is real (a local Discord's)."""
    import asyncio
    import signal

    from sandbox import SandboxDiscord
    from sandbox.harness import ACME, build_guild

    init, check, run = _readme_block("## Run it for real")
    assert (init, check) == ("warden init", "warden check-config --config config.toml")
    r = await asyncio.to_thread(warden, tmp_path, *shlex.split(init)[1:])
    assert r.returncode == 0 and (tmp_path / "config.toml").exists(), r.stderr
    r = await asyncio.to_thread(warden, tmp_path, *shlex.split(check)[1:])
    assert r.returncode == 0 and "config.toml: OK" in r.stdout, r.stdout + r.stderr
    assignment, *argv = shlex.split(run)
    assert assignment == "WARDEN_TOKEN=…" and argv == ["warden", "run", "--config", "config.toml"]
    async with SandboxDiscord() as sb:
        build_guild(sb, ACME)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        environ["PYTHONPATH"] = str(REPO) + os.pathsep + environ.get("PYTHONPATH", "")
        environ.update(
            WARDEN_TOKEN=sb.token,
            WARDEN_DISCORD_API_URL=sb.api_url,
            WARDEN_DISCORD_GATEWAY_URL=sb.gateway_url,
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *argv[1:],
            cwd=tmp_path,
            env=environ,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await sb.wait_until_ready(timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(proc.communicate(), 30)
    log = output.decode()
    assert proc.returncode == 0, log
    assert "Traceback" not in log
    # The example's relative paths land in the directory it was run from.
    assert (tmp_path / "warden.db").exists() and (tmp_path / "warden-signing.key").exists()
