"""`warden audit report`: a readable, self-contained HTML report beside the signed export."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
from pathlib import Path

import pytest

from bot.cli import main
from bot.controls import ControlMap
from bot.ledger import key_id_for, verify_export
from bot.report import REPORT_FILE, write_report
from tests.helpers import HOSTILE_REASON, T0, Populated, rows, section


async def report(p: Populated, out: Path, since: dt.datetime | None = None):
    now = p.world.clock.now()
    async with p.world.bot.session_factory() as session:
        return await write_report(
            session, out, p.signer, ControlMap.load_default(), since=since, until=None, now=now
        )


async def test_report_from_a_real_run(populated: Populated, tmp_path: Path) -> None:
    out = tmp_path / "evidence"
    result = await report(populated, out)
    page = (out / REPORT_FILE).read_text(encoding="utf-8")
    names = populated.names

    # Beside the signed export, which verifies from its files alone.
    assert {"ledger.jsonl", "head.json", "public_key.pem", "README.txt", REPORT_FILE} <= {
        f.name for f in out.iterdir()
    }
    assert verify_export(out, populated.signer.public_key_pem()).ok

    # Verification result and the key's fingerprint.
    v = section(page, "verification")
    entries = sum(1 for _ in (out / "ledger.jsonl").open())
    assert f"<strong>Ledger VERIFIED</strong>: {entries} entries" in v
    assert f'<code id="key-id">{key_id_for(populated.signer.public_key)}</code>' in v
    assert re.search(r'<code id="key-fingerprint">([0-9a-f]{2}:){31}[0-9a-f]{2}</code>', v)
    assert "verifies from its files alone" in v

    # Grants: #1 (quorum), #2 (auto-approved), #3 (break-glass), #4 (quorum).
    assert [r[2] for r in rows(page, "grants-table")] == ["1", "2", "3", "4"]
    assert '<div class="tile" id="count-grants"><span class="n">4</span>' in page
    assert result.data.outcomes["denied"] == 1

    # Who approved what: bob and carol by name and id; the auto-approval by policy.
    approvals = {r[2]: r for r in rows(page, "approvals-table")}
    assert approvals["1"][6] == f"bob ({names['bob']}), carol ({names['carol']})"
    assert approvals["1"][8] == "25m"  # request at 09:00, quorum at 09:25
    assert approvals["3"][6] == "policy (auto-approved)"
    assert approvals["5"][6] == f"carol ({names['carol']}), bob ({names['bob']})"
    approvers = {r[0]: r[1:] for r in rows(page, "approvers-table")}
    assert approvers[f"bob ({names['bob']})"] == ["2", "1"]
    assert approvers[f"carol ({names['carol']})"] == ["2", "0"]
    assert result.data.latencies == [25 * 60, 60 * 60]

    # Break-glass and its review.
    [bg] = rows(page, "breakglass-table")
    assert bg[3] == "breakglass-admin" and bg[4] == f"dave ({names['dave']})" and "prod down" in bg[5]
    assert bg[6] == f"bob ({names['bob']})" and bg[8] == "40m"

    # Expiries and revocations.
    endings = {r[3]: r for r in rows(page, "endings-table")}
    assert endings["1"][2] == "expired" and endings["1"][6] == "Warden (expiry)"
    assert endings["2"][2] == "revoked" and endings["2"][6] == f"bob ({names['bob']})"
    assert endings["2"][7] == "done early"

    # Nothing failed; every control the map declares is listed with its count.
    assert 'id="failed-table"' not in page and "No control failed in this period" in page
    coverage = {r[0]: r for r in rows(page, "coverage-table")}
    assert set(coverage) == set(ControlMap.load_default().controls)
    assert int(coverage["ISO27001:A.8.15"][3]) == entries  # every entry is its own log record
    assert coverage["ISO27001:A.8.2"][3] != "0"
    assert coverage["EUAIA:Art.14"][3] == "0"  # no bot was a subject

    # Charts are inline SVG drawn by matplotlib; nothing is loaded from anywhere.
    assert page.count("<svg ") == 3
    assert "Grants per day" in page and "Time from request to approval" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<link" not in page and "@import" not in page
    assert html.escape("default-src 'none'") in page  # a Content-Security-Policy forbids every fetch

    # User text is escaped wherever it appears: the only script is the page's own sorter.
    assert page.count("<script") == 1
    assert "<script>alert" not in page and "<b>yet</b>" not in page
    assert html.escape(HOSTILE_REASON) in page
    assert "no change ticket &lt;b&gt;yet&lt;/b&gt;" in page
    denial = next(r for r in rows(page, "votes-table") if r[3] == "deny")
    assert denial[2] == f"bob ({names['bob']})" and denial[7] == "no change ticket <b>yet</b>"


async def test_since_limits_the_period_but_not_the_verification(populated: Populated, tmp_path: Path) -> None:
    second_day = T0 + dt.timedelta(days=1)
    result = await report(populated, tmp_path / "out", since=second_day)
    page = result.path.read_text(encoding="utf-8")
    assert [r[2] for r in rows(page, "grants-table")] == ["2", "3", "4"]
    assert all(e.at >= second_day for e in result.data.entries)
    # Request #5's latency is measured from its request, #1's is out of the period.
    assert result.data.latencies == [60 * 60]
    assert result.verification.entries == result.data.total_entries > len(result.data.entries)


async def test_cli_writes_report_and_export(
    populated: Populated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WARDEN_DATABASE_URL", populated.database_url)
    monkeypatch.setenv("WARDEN_SIGNING_KEY", str(populated.key_path))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "q1"
    code = await asyncio.to_thread(main, ["audit", "report", "--since", "2026-03-01", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert f"wrote {out / REPORT_FILE}: " in printed.out and "4 grants, 1 break-glass uses" in printed.out
    assert verify_export(out, populated.signer.public_key_pem()).ok
    assert "Ledger VERIFIED" in (out / REPORT_FILE).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "March 1st"], "--since 'March 1st' is not a date: use YYYY-MM-DD"),
        (["--since", "2026-03-05", "--until", "2026-03-01"], "--since 2026-03-05 is not before --until"),
    ],
)
def test_cli_refuses_bad_dates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = tmp_path / "never"
    assert main(["audit", "report", "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
