"""The one error type the CLI prints as a single line (exit 2) instead of a traceback."""

from __future__ import annotations


class StartupError(Exception):
    """A problem an operator must fix before Warden can start; printed once, exit 2."""
