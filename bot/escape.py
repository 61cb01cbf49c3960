"""Text people typed (reasons, deny notes, names) shown back to others in Discord.

Escaped so it reads as typed: it cannot fake bold or links, render a masked link, or mention
anyone (allowed mentions are off everywhere too; escaping also stops a mention *looking* real).
"""

from __future__ import annotations

import re

import discord

# C0 control characters except tab and newline, and DEL: PostgreSQL text cannot hold NUL, and the
# others only garble cards, narratives and logs.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def typed(value: str | None) -> str:
    """What a person typed (a reason, a deny note), as Warden keeps it: no control characters, stripped."""
    return _CONTROL.sub("", value or "").strip()


def user_text(value: str | None, empty: str = "—") -> str:
    if not value:
        return empty
    text = discord.utils.escape_markdown(value)
    # escape_markdown leaves masked links alone: [label](https://…) would still render as a link.
    text = text.replace("[", "\\[").replace("]", "\\]")
    return discord.utils.escape_mentions(text) if "@" in text else text
