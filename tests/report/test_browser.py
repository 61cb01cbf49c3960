"""The report displays in a real browser: headless Chromium opens it from disk and screenshots it."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import tempfile
from pathlib import Path

import pytest

from bot.controls import ControlMap
from bot.report import REPORT_FILE, write_report
from tests.helpers import populated_world

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Where a screenshot is kept for a person to look at (optional).
KEEP_ENV = "WARDEN_REPORT_SCREENSHOT"


def chromium() -> str | None:
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def png_pixels_vary(path: Path) -> bool:
    """Whether the picture is more than a blank page: a blank 1280x2000 PNG compresses to a few KB."""
    return path.stat().st_size > 50_000


async def run_chromium(browser: str, tmp_path: Path, action: str, uri: str) -> tuple[int | None, str]:
    """Run headless Chromium on ``uri`` with a fresh profile and no network use; (exit code, output)."""
    profile = Path(tempfile.mkdtemp(prefix="profile-", dir=tmp_path))
    proc = await asyncio.create_subprocess_exec(
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        action,
        "--window-size=1280,2000",
        uri,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(errors="replace") + err.decode(errors="replace")


async def test_report_displays_in_headless_chromium(tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip(
            "no Chromium binary found (looked for " + ", ".join(CANDIDATES) + "); "
            "install it to check the report renders, e.g. `apt-get install -y chromium` on Debian"
        )
    async with populated_world(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", tmp_path) as p:
        now = p.world.clock.now()
        async with p.world.bot.session_factory() as session:
            result = await write_report(
                session,
                tmp_path / "out",
                p.signer,
                ControlMap.load_default(),
                since=None,
                until=None,
                now=now,
            )
    shot = tmp_path / "report.png"
    code, log = await run_chromium(browser, tmp_path, f"--screenshot={shot}", result.path.as_uri())
    assert shot.exists(), f"Chromium wrote no screenshot (exit {code}):\n{log[-3000:]}"
    assert png_size(shot.read_bytes()) == (1280, 2000)
    assert png_pixels_vary(shot), "the screenshot looks blank"

    # The page's own inline script ran under its Content-Security-Policy (sorting is wired up).
    code, dom = await run_chromium(browser, tmp_path, "--dump-dom", result.path.as_uri())
    assert 'data-sorting="ready"' in dom, f"the sorting script did not run (exit {code}):\n{dom[-3000:]}"
    assert "Ledger VERIFIED" in dom
    if os.environ.get(KEEP_ENV):
        shutil.copy(shot, os.environ[KEEP_ENV])
    assert result.path.name == REPORT_FILE
