"""Hostile input for the property tests: what a person (or a modified client) can type or send."""

from __future__ import annotations

import copy
import datetime as dt
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Small by default so the suite stays fast; WARDEN_PROPERTY_EXAMPLES=2000 for a longer hunt
# (docs/testing.md). Sandbox-driven properties use a quarter of it.
EXAMPLES = int(os.environ.get("WARDEN_PROPERTY_EXAMPLES", "50"))


def property_settings(max_examples: int = EXAMPLES) -> settings:
    return settings(
        max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


# Text that has broken chat bots before: mentions, markdown, masked links, bidi and zero-width
# characters, combining marks, surrogate-free astral characters, NULs, very long runs.
HOSTILE_PIECES = [
    "@everyone",
    "@here",
    "<@&123456789012345678>",
    "<@!123456789012345678>",
    "<#123456789012345678>",
    "[click](https://evil.example)",
    "**bold** __u__ ~~s~~ `code` ```block```",
    "\u202e\u2066\u200b\u200d\ufeff",
    "Z\u0351\u0308\u0337\u0321",
    "\x00\x1b[31m",
    "😀👩‍👩‍👧",
    "\\",
    "'; DROP TABLE requests; --",
    "%s %(x)s {0} {x}",
    "9" * 50 + "m",
    "-1h",
    "1e9d",
    "nan",
    "   ",
]

hostile_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(HOSTILE_PIECES),
    st.lists(st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(max_size=8)), max_size=6).map("".join),
    st.text(min_size=1, max_size=3).map(lambda s: s * 2000),  # huge (Discord allows 6000 per option)
)


def discord_option(text: str) -> str:
    """What Discord delivers for a string option: at most 6000 characters, never empty."""
    return (text or "x")[:6000]


toml_scalars = st.one_of(
    st.text(max_size=30),
    st.sampled_from(HOSTILE_PIECES),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(timezones=st.one_of(st.none(), st.just(dt.UTC))),
    st.dates(),
    st.times(),
)

toml_values: st.SearchStrategy[Any] = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(min_size=1, max_size=12), inner, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` (parsed TOML) with 1 to 4 values set to anything TOML can hold, removed, or added."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        node: dict[str, Any] = data
        while True:  # walk down to some table (or a table in an array of tables)
            children = [k for k, v in node.items() if isinstance(v, dict)]
            children += [
                k for k, v in node.items() if isinstance(v, list) and any(isinstance(x, dict) for x in v)
            ]
            if not children or draw(st.booleans()):
                break
            child = node[draw(st.sampled_from(sorted(children)))]
            node = (
                child
                if isinstance(child, dict)
                else draw(st.sampled_from([x for x in child if isinstance(x, dict)]))
            )
        op = draw(st.sampled_from(["set", "delete", "add"]))
        keys = sorted(node)
        if op == "set" and keys:
            node[draw(st.sampled_from(keys))] = draw(toml_values)
        elif op == "delete" and keys:
            del node[draw(st.sampled_from(keys))]
        else:
            key = draw(st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(HOSTILE_PIECES)))
            node[key] = draw(toml_values)
    return data
