"""The sandbox depends on the bot, never the other way: the production bot runs without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Every module of bot/ and cogs/ (not just the entry points), in a fresh interpreter: the test
# process itself imported the sandbox long ago. `warden sandbox` imports it inside the command.
PROBE = """
import importlib, pkgutil, sys
import bot.client, bot.cli
import bot, cogs
for package in (bot, cogs):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
print(sorted(m for m in sys.modules if m == "sandbox" or m.startswith("sandbox.")))
"""


def test_production_modules_do_not_import_the_sandbox() -> None:
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"production code imports the sandbox: {r.stdout.strip()}"
