"""Pure parsers behind the slash options: any text gives a value or a short, clear refusal."""

from __future__ import annotations

import datetime as dt

from hypothesis import example, given
from hypothesis import strategies as st

from bot.approvals.buttons import modal_values
from bot.durations import DurationError, parse_duration
from tests.helpers import hostile_text, property_settings

# A refusal quotes what was typed; it must still fit in one Discord message with room to spare.
MAX_MESSAGE = 300


@property_settings()
@given(text=st.one_of(hostile_text, st.from_regex(r"\s*-?[0-9]{0,30}\s*[a-zA-Z]{0,8}\s*", fullmatch=True)))
@example(text="9" * 6000)  # once quoted back whole: a 12 000-character answer Discord refuses
@example(text="-" * 6000)
@example(text="9" * 5000 + "m")
def test_durations_parse_or_refuse_briefly(text: str) -> None:
    try:
        value = parse_duration(text)
    except DurationError as exc:
        assert str(exc).strip() and len(str(exc)) <= MAX_MESSAGE, str(exc)[:200]
        return
    assert dt.timedelta(0) < value <= dt.timedelta(days=3650)


json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@property_settings()
@given(data=st.dictionaries(st.sampled_from(["components", "custom_id", "x"]), json_like, max_size=3))
@example(data={"components": [{"component": None}]})  # once a TypeError, answered with the apology
@example(data={"components": "abc"})
@example(data={"components": [{"components": 5}]})
def test_modal_values_read_any_payload(data: dict) -> None:
    """A modal submit's components as a modified client may send them: values or nothing, never a crash."""
    values = modal_values(data)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
