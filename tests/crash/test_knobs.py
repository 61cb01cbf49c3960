"""WARDEN_TUNING and WARDEN_KILL_AT: reliability testing's knobs are validated, never silently wrong."""

from __future__ import annotations

import shutil

import pytest

from bot.services.killpoints import KILL_POINTS, KillSwitch
from bot.settings import SettingsError, load_settings
from bot.wiring import Tuning
from tests.helpers import EXAMPLE, SECRET, warden


def test_tuning_overrides_parse_into_production_tuning(monkeypatch) -> None:
    monkeypatch.setenv("WARDEN_TUNING", "sweep_seconds=1, claim_seconds=3,discord_attempts=2")
    monkeypatch.setenv("WARDEN_KILL_AT", "grant.apply.after_discord")
    settings = load_settings()
    tuning = Tuning.overridden(settings.tuning, settings.kill_at)
    assert (tuning.sweep_seconds, tuning.claim_seconds, tuning.discord_attempts) == (1.0, 3.0, 2)
    assert tuning.apply_claim_seconds == Tuning().apply_claim_seconds  # the rest stay production's
    assert tuning.kill_at == "grant.apply.after_discord"
    assert tuning.claims().removal.total_seconds() == 3


def test_a_malformed_tuning_list_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("WARDEN_TUNING", "sweep_seconds")
    with pytest.raises(SettingsError, match=r"WARDEN_TUNING.*name=value"):
        load_settings()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sweep": "1"}, "'sweep' is not a tuning knob; use one of: .*sweep_seconds"),
        ({"sweep_seconds": "soon"}, "sweep_seconds: 'soon' is not a number"),
        ({"claim_seconds": "0"}, "claim_seconds: must be above zero"),
        ({"kill_at": "x"}, "'kill_at' is not a tuning knob"),
    ],
)
def test_bad_tuning_names_what_is_wrong(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Tuning.overridden(overrides)


def test_an_unknown_kill_point_is_refused_and_the_known_ones_listed() -> None:
    with pytest.raises(
        ValueError, match=r"'grant\.apply\.later' is not a kill point; use one of: request\.create"
    ):
        KillSwitch("grant.apply.later")
    assert KillSwitch(None).at is None and len(set(KILL_POINTS)) == len(KILL_POINTS)


def test_warden_run_refuses_an_unknown_kill_point_before_it_starts(tmp_path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "config.toml")
    out = warden(tmp_path, "run", WARDEN_TOKEN=SECRET, WARDEN_KILL_AT="grant.apply.nowhere")
    assert out.code == 2, out.text
    assert "WARDEN_TUNING / WARDEN_KILL_AT: 'grant.apply.nowhere' is not a kill point" in out.text
    assert "Traceback" not in out.text
