"""NEWS2 against the RCP chart (2017): every band, both sides of every boundary."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from telemetry.scoring import (
    ARGUMENTS,
    PARAMETERS,
    FreshnessWindows,
    News2,
    Reading,
    latest_inputs,
    news2,
)

NORMAL = {
    "respiration_rate": 16,
    "spo2": 97,
    "on_oxygen": False,
    "systolic_bp": 120,
    "pulse_rate": 70,
    "consciousness": "A",
    "temperature_c": 37.0,
}
NOTHING = dict.fromkeys(NORMAL)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def score(**changes: object) -> News2:
    return news2(**{**NORMAL, **changes})  # type: ignore[arg-type]


def banded(cases: list[tuple[object, int]]) -> list[object]:
    return [
        pytest.param(value, points, id=f"{value}->{points}") for value, points in cases
    ]


# --- every band, both sides of every boundary ------------------------------------


@pytest.mark.parametrize(
    ("rate", "points"),
    banded(
        [
            (0, 3),
            (8, 3),
            (9, 1),
            (11, 1),
            (12, 0),
            (20, 0),
            (21, 2),
            (24, 2),
            (25, 3),
            (60, 3),
        ]
    ),
)
def test_respiration_rate_scores_its_chart_band(rate: int, points: int) -> None:
    result = score(respiration_rate=rate)
    assert result.subscores["respiration_rate"] == points
    assert result.total == points


@pytest.mark.parametrize(
    ("spo2", "points"),
    banded([(0, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]),
)
@pytest.mark.parametrize("on_oxygen", [False, True], ids=["on air", "on oxygen"])
def test_spo2_scale_1_scores_its_band_whether_on_air_or_oxygen(
    spo2: int, points: int, on_oxygen: bool
) -> None:
    result = score(spo2=spo2, on_oxygen=on_oxygen)
    assert result.subscores["spo2"] == points
    assert result.total == points + (2 if on_oxygen else 0)


@pytest.mark.parametrize(
    ("spo2", "points"),
    banded(
        [
            (70, 3),
            (83, 3),
            (84, 2),
            (85, 2),
            (86, 1),
            (87, 1),
            (88, 0),
            (92, 0),
            (93, 0),
            (97, 0),
            (100, 0),
        ]
    ),
)
def test_spo2_scale_2_on_air_scores_its_band(spo2: int, points: int) -> None:
    result = score(spo2=spo2, on_oxygen=False, spo2_scale=2)
    assert result.subscores["spo2"] == points
    assert result.total == points


@pytest.mark.parametrize(
    ("spo2", "points"),
    banded(
        [
            (70, 3),
            (83, 3),
            (84, 2),
            (85, 2),
            (86, 1),
            (87, 1),
            (88, 0),
            (92, 0),
            (93, 1),
            (94, 1),
            (95, 2),
            (96, 2),
            (97, 3),
            (100, 3),
        ]
    ),
)
def test_spo2_scale_2_on_oxygen_scores_its_band(spo2: int, points: int) -> None:
    result = score(spo2=spo2, on_oxygen=True, spo2_scale=2)
    assert result.subscores["spo2"] == points
    assert result.subscores["air_or_oxygen"] == 2
    assert result.total == points + 2


@pytest.mark.parametrize(("on_oxygen", "points"), [(False, 0), (True, 2)])
def test_oxygen_scores_two_and_air_scores_nothing(on_oxygen: bool, points: int) -> None:
    assert score(on_oxygen=on_oxygen).subscores["air_or_oxygen"] == points


@pytest.mark.parametrize(
    ("systolic", "points"),
    banded(
        [
            (0, 3),
            (90, 3),
            (91, 2),
            (100, 2),
            (101, 1),
            (110, 1),
            (111, 0),
            (219, 0),
            (220, 3),
            (300, 3),
        ]
    ),
)
def test_systolic_bp_scores_its_chart_band(systolic: int, points: int) -> None:
    result = score(systolic_bp=systolic)
    assert result.subscores["systolic_bp"] == points
    assert result.total == points


@pytest.mark.parametrize(
    ("pulse", "points"),
    banded(
        [
            (0, 3),
            (40, 3),
            (41, 1),
            (50, 1),
            (51, 0),
            (90, 0),
            (91, 1),
            (110, 1),
            (111, 2),
            (130, 2),
            (131, 3),
            (220, 3),
        ]
    ),
)
def test_pulse_scores_its_chart_band(pulse: int, points: int) -> None:
    result = score(pulse_rate=pulse)
    assert result.subscores["pulse"] == points
    assert result.total == points


@pytest.mark.parametrize(
    ("level", "points"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)]
)
def test_consciousness_scores_three_for_new_confusion_voice_pain_or_unresponsive(
    level: str, points: int
) -> None:
    assert score(consciousness=level).subscores["consciousness"] == points


@pytest.mark.parametrize(
    ("temperature", "points"),
    banded(
        [
            (30.0, 3),
            (35.0, 3),
            (35.1, 1),
            (36.0, 1),
            (36.1, 0),
            (37, 0),
            (38.0, 0),
            (38.1, 1),
            (39.0, 1),
            (39.1, 2),
            (42.0, 2),
        ]
    ),
)
def test_temperature_scores_its_chart_band(temperature: float, points: int) -> None:
    result = score(temperature_c=temperature)
    assert result.subscores["temperature"] == points
    assert result.total == points


# --- values between the charted ones are rounded half up first ----------------------


@pytest.mark.parametrize(
    ("temperature", "points"),
    banded(
        [
            (35.04, 3),
            (35.05, 1),
            (36.04, 1),
            (36.05, 0),
            (38.04, 0),
            (38.049999, 0),
            (38.05, 1),
            (39.04, 1),
            (39.05, 2),
            (Decimal("38.05"), 1),
        ]
    ),
)
def test_temperature_is_rounded_half_up_to_one_decimal_before_banding(
    temperature: float, points: int
) -> None:
    assert score(temperature_c=temperature).subscores["temperature"] == points


@pytest.mark.parametrize(
    ("argument", "value", "parameter", "points"),
    [
        ("respiration_rate", 8.49, "respiration_rate", 3),
        ("respiration_rate", 8.5, "respiration_rate", 1),
        ("respiration_rate", 20.49, "respiration_rate", 0),
        ("respiration_rate", 20.5, "respiration_rate", 2),
        ("spo2", 95.49, "spo2", 1),
        ("spo2", 95.5, "spo2", 0),
        ("systolic_bp", 90.49, "systolic_bp", 3),
        ("systolic_bp", 90.5, "systolic_bp", 2),
        ("systolic_bp", 219.49, "systolic_bp", 0),
        ("systolic_bp", 219.5, "systolic_bp", 3),
        ("pulse_rate", 90.49, "pulse", 0),
        ("pulse_rate", 90.5, "pulse", 1),
        ("pulse_rate", 130.5, "pulse", 3),
    ],
)
def test_whole_number_parameters_are_rounded_half_up_before_banding(
    argument: str, value: float, parameter: str, points: int
) -> None:
    assert score(**{argument: value}).subscores[parameter] == points


def test_spo2_scale_2_rounds_before_choosing_the_oxygen_bands() -> None:
    assert score(spo2=92.5, on_oxygen=True, spo2_scale=2).subscores["spo2"] == 1
    assert score(spo2=92.49, on_oxygen=None, spo2_scale=2).subscores["spo2"] == 0


# --- risk bands and their precedence ------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "total", "risk"),
    [
        pytest.param({}, 0, "low", id="0 is low"),
        pytest.param({"pulse_rate": 91}, 1, "low", id="1 is low"),
        pytest.param(
            {"respiration_rate": 21, "spo2": 92}, 4, "low", id="4 without a 3 is low"
        ),
        pytest.param({"consciousness": "C"}, 3, "low-medium", id="a lone 3"),
        pytest.param(
            {"consciousness": "V", "pulse_rate": 91},
            4,
            "low-medium",
            id="a 3 within 4",
        ),
        pytest.param(
            {"respiration_rate": 21, "spo2": 92, "pulse_rate": 91},
            5,
            "medium",
            id="5 without a 3",
        ),
        pytest.param(
            {"respiration_rate": 21, "spo2": 92, "systolic_bp": 105, "pulse_rate": 91},
            6,
            "medium",
            id="6 without a 3",
        ),
        pytest.param(
            {"temperature_c": 35.0, "spo2": 92}, 5, "medium", id="5 with a 3 is medium"
        ),
        pytest.param(
            {"temperature_c": 35.0, "on_oxygen": True, "pulse_rate": 91},
            6,
            "medium",
            id="6 with a 3 is medium",
        ),
        pytest.param(
            {"respiration_rate": 21, "spo2": 92, "on_oxygen": True, "pulse_rate": 91},
            7,
            "high",
            id="7 without a 3 is high",
        ),
        pytest.param(
            {"consciousness": "U", "spo2": 92, "on_oxygen": True},
            7,
            "high",
            id="7 with a 3 is high",
        ),
        pytest.param(
            {
                "respiration_rate": 30,
                "spo2": 85,
                "on_oxygen": True,
                "systolic_bp": 80,
                "pulse_rate": 140,
                "consciousness": "U",
                "temperature_c": 34.0,
            },
            20,
            "high",
            id="the maximum of 20",
        ),
    ],
)
def test_risk_follows_the_rcp_thresholds_with_the_aggregate_outranking_a_lone_3(
    changes: dict[str, object], total: int, risk: str
) -> None:
    result = score(**changes)
    assert (result.total, result.risk) == (total, risk)
    assert result.complete


@pytest.mark.parametrize(
    ("changes", "monitoring", "response_starts"),
    [
        ({}, "Minimum 12-hourly", "Continue routine"),
        ({"pulse_rate": 91}, "Minimum 4-6-hourly", "Inform the registered nurse"),
        ({"consciousness": "C"}, "Minimum 1-hourly", "Urgent ward-based response"),
        (
            {"respiration_rate": 21, "spo2": 92, "pulse_rate": 91},
            "Minimum 1-hourly",
            "Urgent response",
        ),
        (
            {"respiration_rate": 30, "spo2": 85, "on_oxygen": True},
            "Continuous monitoring of vital signs",
            "Emergency response",
        ),
    ],
    ids=["0", "1-4", "a lone 3", "5-6", "7+"],
)
def test_each_band_names_its_monitoring_frequency_and_clinical_response(
    changes: dict[str, object], monitoring: str, response_starts: str
) -> None:
    result = score(**changes)
    assert result.monitoring == monitoring
    assert result.response.startswith(response_starts)


# --- partial scores -----------------------------------------------------------------


@pytest.mark.parametrize(("argument", "parameter"), list(ARGUMENTS.items()))
def test_a_missing_parameter_is_listed_and_never_scored_as_normal(
    argument: str, parameter: str
) -> None:
    result = score(**{argument: None})
    assert result.partial
    assert not result.complete
    assert parameter in result.missing
    assert parameter not in result.subscores


def test_a_partial_total_is_the_sum_of_what_was_measured() -> None:
    result = score(respiration_rate=22, pulse_rate=None, temperature_c=None)
    assert result.total == 2
    assert result.missing == ("pulse", "temperature")
    assert set(result.subscores) | set(result.missing) == set(PARAMETERS)


def test_missing_parameters_are_listed_in_chart_order() -> None:
    assert news2(**NOTHING).missing == PARAMETERS  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "total", "risk"),
    [
        pytest.param(
            {"respiration_rate": 30, "systolic_bp": 80, "pulse_rate": 111},
            8,
            "high",
            id="7+",
        ),
        pytest.param(
            {"respiration_rate": 21, "pulse_rate": 111, "temperature_c": 38.5},
            5,
            "medium",
            id="5-6",
        ),
        pytest.param({"consciousness": "P"}, 3, "low-medium", id="a lone 3"),
    ],
)
def test_a_partial_score_still_alarms_on_what_it_already_knows(
    changes: dict[str, object], total: int, risk: str
) -> None:
    result = score(**changes, spo2=None, on_oxygen=None)
    assert result.partial
    assert (result.total, result.risk) == (total, risk)


def test_a_partial_zero_is_not_given_the_routine_12_hourly_response() -> None:
    result = score(temperature_c=None)
    assert (result.total, result.risk) == (0, "low")
    assert result.monitoring == "Minimum 4-6-hourly"


def test_nothing_measured_is_a_partial_zero_with_everything_missing() -> None:
    result = news2(**NOTHING)  # type: ignore[arg-type]
    assert result.total == 0
    assert dict(result.subscores) == {}
    assert result.partial
    assert result.monitoring == "Minimum 4-6-hourly"


@pytest.mark.parametrize("spo2", [93, 97, 100])
def test_scale_2_high_saturation_is_missing_while_air_or_oxygen_is_unknown(
    spo2: int,
) -> None:
    result = score(spo2=spo2, on_oxygen=None, spo2_scale=2)
    assert result.missing == ("spo2", "air_or_oxygen")


@pytest.mark.parametrize(("spo2", "points"), [(83, 3), (85, 2), (87, 1), (92, 0)])
def test_scale_2_low_saturation_scores_even_when_air_or_oxygen_is_unknown(
    spo2: int, points: int
) -> None:
    result = score(spo2=spo2, on_oxygen=None, spo2_scale=2)
    assert result.subscores["spo2"] == points
    assert result.missing == ("air_or_oxygen",)


def test_scale_1_saturation_scores_even_when_air_or_oxygen_is_unknown() -> None:
    result = score(spo2=93, on_oxygen=None)
    assert result.subscores["spo2"] == 2
    assert result.missing == ("air_or_oxygen",)


# --- invalid inputs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"respiration_rate": -1}, "respiration_rate must be between 0 and 120"),
        ({"pulse_rate": -5}, "pulse_rate must be between 0 and 400"),
        ({"systolic_bp": -1}, "systolic_bp must be between 0 and 400"),
        ({"spo2": 101}, "spo2 must be between 0 and 100"),
        ({"spo2": -1}, "spo2 must be between 0 and 100"),
        ({"temperature_c": 98.6}, "temperature_c must be between 10 and 50 degC"),
        ({"temperature_c": float("nan")}, "temperature_c must be a finite number"),
        ({"pulse_rate": float("inf")}, "pulse_rate must be a finite number"),
        ({"consciousness": "X"}, "consciousness must be one of A, C, V, P, U"),
        ({"consciousness": "a"}, "consciousness must be one of A, C, V, P, U"),
        ({"consciousness": "Alert"}, "consciousness must be one of A, C, V, P, U"),
        ({"spo2_scale": 3}, "spo2_scale must be 1 or 2"),
        ({"spo2_scale": 0}, "spo2_scale must be 1 or 2"),
        ({"spo2_scale": True}, "spo2_scale must be 1 or 2"),
        ({"spo2_scale": None}, "spo2_scale must be 1 or 2"),
        ({"spo2_scale": "2"}, "spo2_scale must be 1 or 2"),
    ],
)
def test_it_rejects_impossible_values_with_a_clear_message(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        score(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"pulse_rate": "80"},
        {"respiration_rate": True},
        {"on_oxygen": 1},
        {"on_oxygen": "yes"},
    ],
)
def test_it_rejects_values_of_the_wrong_type(changes: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="must be"):
        score(**changes)


@pytest.mark.parametrize(
    "changes", [{"respiration_rate": 120}, {"spo2": 0}, {"temperature_c": 10}]
)
def test_it_accepts_the_plausibility_limits_themselves(
    changes: dict[str, object],
) -> None:
    assert score(**changes).complete


def test_every_argument_is_required_so_that_nothing_defaults_to_normal() -> None:
    with pytest.raises(TypeError):
        news2(respiration_rate=16)  # type: ignore[call-arg]


# --- the result as a value ----------------------------------------------------------


def test_to_dict_is_json_safe_and_round_trips() -> None:
    data = score(pulse_rate=None, on_oxygen=True, spo2_scale=2, spo2=95).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "total": 4,
        "risk": "low",
        "subscores": {
            "respiration_rate": 0,
            "spo2": 2,
            "air_or_oxygen": 2,
            "systolic_bp": 0,
            "consciousness": 0,
            "temperature": 0,
        },
        "missing": ["pulse"],
        "partial": True,
        "spo2_scale": 2,
        "monitoring": "Minimum 4-6-hourly",
        "response": data["response"],
    }


def test_the_score_cannot_be_changed_after_the_fact() -> None:
    result = score()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.total = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.subscores["pulse"] = 3  # type: ignore[index]
    result.to_dict()["subscores"]["pulse"] = 3
    assert result.subscores["pulse"] == 0


def test_total_and_risk_are_derived_from_the_subscores() -> None:
    result = News2(subscores={"pulse": 3, "spo2": 2}, missing=("temperature",))
    assert (result.total, result.risk, result.partial) == (5, "medium", True)


# --- the patient's current inputs from their latest readings ------------------------


def fresh_readings(at: datetime = NOW) -> dict[str, Reading]:
    continuous = {"spo2", "pulse_rate"}
    return {
        name: Reading(value, at, continuous=name in continuous)
        for name, value in NORMAL.items()
    }


def test_fresh_readings_give_a_complete_score() -> None:
    latest = latest_inputs(fresh_readings(), now=NOW)
    assert latest.stale == ()
    assert latest.inputs == NORMAL
    assert news2(**latest.inputs).complete


@pytest.mark.parametrize(
    ("age", "fresh"),
    [
        (timedelta(0), True),
        (timedelta(minutes=59), True),
        (timedelta(hours=1), True),
        (timedelta(hours=1, microseconds=1), False),
        (timedelta(days=2), False),
    ],
)
def test_a_spot_check_is_fresh_for_one_hour(age: timedelta, fresh: bool) -> None:
    readings = {"systolic_bp": Reading(95, NOW - age)}
    latest = latest_inputs(readings, now=NOW)
    assert latest.inputs["systolic_bp"] == (95 if fresh else None)
    assert latest.stale == (() if fresh else ("systolic_bp",))


@pytest.mark.parametrize(
    ("age", "fresh"),
    [
        (timedelta(seconds=59), True),
        (timedelta(minutes=1), True),
        (timedelta(minutes=1, microseconds=1), False),
        (timedelta(minutes=5), False),
    ],
)
def test_a_streamed_value_is_fresh_for_one_minute(age: timedelta, fresh: bool) -> None:
    readings = {"pulse_rate": Reading(72, NOW - age, continuous=True)}
    latest = latest_inputs(readings, now=NOW)
    assert latest.inputs["pulse_rate"] == (72 if fresh else None)
    assert latest.stale == (() if fresh else ("pulse_rate",))


def test_windows_are_configurable() -> None:
    windows = FreshnessWindows(
        spot=timedelta(hours=4), continuous=timedelta(seconds=10)
    )
    readings = {
        "temperature_c": Reading(38.2, NOW - timedelta(hours=3)),
        "spo2": Reading(94, NOW - timedelta(seconds=11), continuous=True),
    }
    latest = latest_inputs(readings, now=NOW, windows=windows)
    assert latest.inputs["temperature_c"] == 38.2
    assert latest.stale == ("spo2",)


def test_stale_readings_become_missing_parameters_of_a_partial_score() -> None:
    readings = fresh_readings()
    readings["pulse_rate"] = Reading(140, NOW - timedelta(minutes=2), continuous=True)
    readings["temperature_c"] = Reading(39.5, NOW - timedelta(hours=2))
    latest = latest_inputs(readings, now=NOW)
    assert latest.stale == ("pulse_rate", "temperature_c")
    result = news2(**latest.inputs)
    assert result.missing == ("pulse", "temperature")
    assert result.missing == tuple(ARGUMENTS[name] for name in latest.stale)
    assert result.total == 0


def test_never_measured_parameters_are_missing_but_not_stale() -> None:
    latest = latest_inputs({"consciousness": None}, now=NOW)
    assert latest.stale == ()
    assert latest.inputs == NOTHING
    assert news2(**latest.inputs).missing == PARAMETERS


def test_a_reading_slightly_ahead_of_now_is_fresh_but_a_broken_clock_is_stale() -> None:
    readings = {
        "spo2": Reading(97, NOW + timedelta(seconds=30), continuous=True),
        "systolic_bp": Reading(120, NOW + timedelta(hours=3)),
    }
    latest = latest_inputs(readings, now=NOW)
    assert latest.inputs["spo2"] == 97
    assert latest.stale == ("systolic_bp",)


def test_readings_in_other_time_zones_are_compared_as_instants() -> None:
    plus_two = timezone(timedelta(hours=2))
    taken = (NOW - timedelta(minutes=30)).astimezone(plus_two)
    latest = latest_inputs({"systolic_bp": Reading(120, taken)}, now=NOW)
    assert latest.inputs["systolic_bp"] == 120


def test_it_rejects_a_naive_now() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        latest_inputs({}, now=datetime(2026, 3, 1, 12, 0))  # noqa: DTZ001


def test_it_rejects_a_naive_reading_time() -> None:
    with pytest.raises(ValueError, match=r"Reading\.time must be timezone-aware"):
        Reading(72, datetime(2026, 3, 1, 12, 0))  # noqa: DTZ001


def test_it_rejects_an_unknown_input_name() -> None:
    with pytest.raises(ValueError, match="unknown NEWS2 inputs \\['heart_rate'\\]"):
        latest_inputs({"heart_rate": Reading(72, NOW)}, now=NOW)


@pytest.mark.parametrize(
    "windows",
    [{"spot": timedelta(0)}, {"continuous": timedelta(seconds=-1)}],
)
def test_freshness_windows_must_be_positive(windows: dict[str, timedelta]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        FreshnessWindows(**windows)
