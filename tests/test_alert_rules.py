"""The pure alert rules: which finding or clearance each measurement gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts import rules
from alerts.rules import Clear, Finding

T = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def kinds(outcomes, cls) -> set[str]:
    return {o.kind for o in outcomes if isinstance(o, cls)}


@pytest.mark.parametrize(
    ("code", "value", "kind", "priority"),
    [
        ("8867-4", 131, "heart_rate_high", "medium"),
        ("8867-4", 39, "heart_rate_low", "high"),
        ("2708-6", 89, "spo2_low", "medium"),
        ("59408-5", 85, "spo2_low", "medium"),
        ("9279-1", 26, "respiratory_rate_high", "medium"),
        ("9279-1", 7, "respiratory_rate_low", "high"),
        ("8480-6", 89, "systolic_bp_low", "medium"),
        ("8480-6", 221, "systolic_bp_high", "medium"),
        ("8310-5", 39.2, "temperature_high", "medium"),
        ("8310-5", 34.9, "temperature_low", "medium"),
    ],
)
def test_a_value_beyond_a_limit_is_a_finding_that_says_why(code, value, kind, priority):
    outcomes = rules.threshold_outcomes(code, value, T, {})
    finding = next(o for o in outcomes if isinstance(o, Finding))
    assert (finding.kind, finding.priority) == (kind, priority)
    assert finding.evidence["value"] == value
    assert "threshold" in finding.evidence
    assert "limit" in finding.message


@pytest.mark.parametrize(
    ("code", "value"),
    [("8867-4", 130), ("8867-4", 40), ("2708-6", 90), ("8310-5", 39.1)],
)
def test_a_value_on_the_limit_clears_both_sides(code, value):
    outcomes = rules.threshold_outcomes(code, value, T, {})
    assert kinds(outcomes, Finding) == set()
    assert kinds(outcomes, Clear)


def test_a_patient_override_replaces_the_default_limit():
    overrides = {"8867-4": {"high": 150}}
    assert (
        kinds(rules.threshold_outcomes("8867-4", 140, T, overrides), Finding) == set()
    )
    assert kinds(rules.threshold_outcomes("8867-4", 151, T, overrides), Finding) == {
        "heart_rate_high"
    }
    # The other side keeps its default.
    assert kinds(rules.threshold_outcomes("8867-4", 35, T, overrides), Finding) == {
        "heart_rate_low"
    }


def test_codes_without_limits_give_nothing():
    assert rules.threshold_outcomes("8462-4", 200, T, {}) == []


@pytest.mark.parametrize(
    ("risk", "total", "subscores", "priority"),
    [
        ("high", 7, {"pulse": 3, "spo2": 2, "temperature": 2}, "high"),
        ("medium", 5, {"pulse": 2, "spo2": 3}, "medium"),
        ("low-medium", 3, {"respiration_rate": 3}, "medium"),
    ],
)
def test_news2_bands_map_to_priorities(risk, total, subscores, priority):
    finding = rules.news2_outcome(
        total=total, risk=risk, subscores=subscores, missing=[], at=T
    )
    assert (finding.kind, finding.priority) == ("news2", priority)
    assert f"NEWS2 {total}" in finding.message


def test_a_low_news2_clears_the_news2_alert():
    assert isinstance(
        rules.news2_outcome(total=2, risk="low", subscores={}, missing=[], at=T), Clear
    )


def test_a_partial_news2_says_what_was_not_measured():
    finding = rules.news2_outcome(
        total=7, risk="high", subscores={"pulse": 3}, missing=["temperature"], at=T
    )
    assert "not measured: temperature" in finding.message


@pytest.mark.parametrize(
    ("rhythm", "kind", "priority"),
    [
        ("vf", "vf", "high"),
        ("af", "af", "medium"),
        ("asystole", "asystole", "high"),
        ("pause", "pause", "high"),
        ("bradycardia", "bradycardia", "medium"),
        ("tachycardia", "tachycardia", "medium"),
    ],
)
def test_each_rhythm_raises_its_own_kind_and_clears_the_others(rhythm, kind, priority):
    outcomes = rules.ecg_outcomes(
        rhythm=rhythm, usable=True, quality=0.9, heart_rate_bpm=80, at=T
    )
    findings = [o for o in outcomes if isinstance(o, Finding)]
    assert [(f.kind, f.priority) for f in findings] == [(kind, priority)]
    assert kinds(outcomes, Clear) == {"ecg_signal_poor", *rules.RHYTHM_KINDS} - {kind}


def test_sinus_clears_every_rhythm_alert():
    outcomes = rules.ecg_outcomes(
        rhythm="sinus", usable=True, quality=0.9, heart_rate_bpm=70, at=T
    )
    assert kinds(outcomes, Finding) == set()
    assert kinds(outcomes, Clear) == {"ecg_signal_poor", *rules.RHYTHM_KINDS}


def test_noise_is_a_technical_alarm_and_leaves_rhythm_alerts_alone():
    outcomes = rules.ecg_outcomes(
        rhythm="noise", usable=False, quality=0.2, heart_rate_bpm=None, at=T
    )
    assert [(o.kind, type(o)) for o in outcomes] == [("ecg_signal_poor", Finding)]
    assert rules.KINDS["ecg_signal_poor"].category == "technical"


def test_vf_on_a_recording_the_quality_gate_calls_unusable_is_still_a_high_alarm():
    """VF waves fail the beat-based gate; the VF verdict must not be read as noise."""
    outcomes = rules.ecg_outcomes(
        rhythm="vf", usable=False, quality=0.2, heart_rate_bpm=140, at=T
    )
    (finding,) = [o for o in outcomes if isinstance(o, Finding)]
    assert (finding.kind, finding.priority) == ("vf", "high")
    assert finding.message == "ECG rhythm: ventricular fibrillation or flutter"
    assert "ecg_signal_poor" not in kinds(outcomes, Finding)


def test_low_battery_and_clock_skew_are_technical_and_low_priority():
    battery = rules.battery_outcome(12, T)[0]
    skew = rules.clock_outcome(timedelta(minutes=-3), T)[0]
    assert (battery.kind, battery.priority) == ("battery_low", "low")
    assert (skew.kind, skew.priority) == ("clock_skew", "low")
    assert "behind" in skew.message
    assert isinstance(rules.battery_outcome(20, T)[0], Clear)
    assert isinstance(rules.clock_outcome(timedelta(seconds=90), T)[0], Clear)


def test_every_kind_has_a_category():
    for kind in rules.KINDS.values():
        assert kind.category in {"physiological", "technical", "security"}
