import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.durations import DurationError, format_duration, parse_duration

H = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", dt.timedelta(minutes=30)),
        ("2h", 2 * H),
        ("1d", dt.timedelta(days=1)),
        ("1h30m", dt.timedelta(minutes=90)),
        ("1h 30m", dt.timedelta(minutes=90)),
        (" 1 H 30 M ", dt.timedelta(minutes=90)),
        ("90s", dt.timedelta(seconds=90)),
        ("2w", dt.timedelta(weeks=2)),
        ("2W", dt.timedelta(weeks=2)),
        ("3 hours", 3 * H),
        ("1d2h3m4s", dt.timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("3650d", dt.timedelta(days=3650)),
    ],
)
def test_parse(text, expected):
    assert parse_duration(text) == expected


def test_unknown_unit_message():
    with pytest.raises(DurationError) as e:
        parse_duration("9x")
    assert str(e.value) == (
        "'9x' is not a duration: use a number with s, m, h, d or w, for example 30m, 2h or 1d"
    )
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("text", ["", "h", "1.5h", "1h30", "abc", "1h-2m", "1hh"])
def test_garbage(text):
    with pytest.raises(DurationError, match="for example"):
        parse_duration(text)


def test_bare_number_asks_for_unit():
    with pytest.raises(DurationError, match="has no unit: write 30m"):
        parse_duration("30")


def test_non_text():
    with pytest.raises(DurationError, match="write it as text"):
        parse_duration(30)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["0m", "0s", "-5m", "0h0m"])
def test_zero_or_negative(text):
    with pytest.raises(DurationError, match="must be longer than zero"):
        parse_duration(text)


def test_zero_allowed_when_asked():
    assert parse_duration("0s", allow_zero=True) == dt.timedelta(0)


def test_repeated_unit():
    with pytest.raises(DurationError, match="same unit twice"):
        parse_duration("1h2h")


@pytest.mark.parametrize("text", ["3651d", "99999999999999999999w", "600w"])
def test_absurd(text):
    with pytest.raises(DurationError, match="too long: the longest duration is 3650d"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (dt.timedelta(minutes=90), "1h 30m"),
        (dt.timedelta(days=2), "2d"),
        (dt.timedelta(seconds=45), "45s"),
        (dt.timedelta(0), "0s"),
        (dt.timedelta(weeks=2), "14d"),
        (dt.timedelta(days=1, seconds=1, microseconds=5), "1d 1s"),
        (-dt.timedelta(minutes=5), "-5m"),
    ],
)
def test_format(td, text):
    assert format_duration(td) == text


@pytest.mark.parametrize("text", ["30m", "1h30m", "2d", "45s", "1d2h3m4s"])
def test_round_trip(text):
    td = parse_duration(text)
    assert parse_duration(format_duration(td)) == td


def test_absurdly_long_text_is_a_clear_refusal():
    with pytest.raises(DurationError, match="too long to be a duration"):
        parse_duration("9" * 5000 + "m")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused_with_a_duration_error(text):
    try:
        parse_duration(text)
    except DurationError as exc:
        assert str(exc)  # a sentence for a person, never a bare ValueError
