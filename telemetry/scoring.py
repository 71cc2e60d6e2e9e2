"""NEWS2, the National Early Warning Score 2, as pure functions.

Source: Royal College of Physicians. *National Early Warning Score (NEWS) 2:
Standardising the assessment of acute-illness severity in the NHS.* Updated report
of a working party. London: RCP, 2017 -- Chart 1 (the scoring system), Chart 2
(SpO2 scale 2: only for hypercapnic respiratory failure with a prescribed 88-92 %
target, on a qualified clinician's instruction), Chart 3 (thresholds and triggers)
and Chart 4 (clinical response). Where our REFERENCE sheet and the RCP charts
disagree, the charts win.

Boundaries. The chart lists whole numbers (temperature: one decimal), so a value is
first rounded to the chart's precision, half up, and then banded: 20.5 breaths/min
is charted as 21 (scores 2), 38.05 degC as 38.1 (scores 1), 38.04 degC as 38.0
(scores 0). Rounding goes through the decimal text of the value, so binary floats
such as 38.05 (stored as 38.04999...) round as written.

Partial scores. Any input may be None (not measured). A missing parameter is never
scored as normal: it is absent from `subscores` and listed in `missing`, and the
total is the sum of what was measured -- a lower bound of the true NEWS2. The risk
band is worked out from that lower bound, so a partial total of 7 is already "high"
and must alarm. Only a complete score of 0 earns the 12-hourly routine response: a
partial 0 gets the 1-4 response (a registered nurse assesses the patient). On SpO2
scale 2, a saturation of 93 % or more scores 0 on air but 1-3 on oxygen, so it
counts as missing while air/oxygen is unknown.

Freshness. `latest_inputs` turns the latest reading of each input into keyword
arguments for `news2`, dropping (and reporting as stale) readings outside their
window: one hour for spot checks, one minute for continuously streamed values.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Literal, TypedDict, cast

Risk = Literal["low", "low-medium", "medium", "high"]
Number = float | Decimal
Value = float | Decimal | str | bool


@dataclass(frozen=True)
class Bands:
    """One chart row: `upto` pairs (highest charted value, points), in order, and
    the points for anything above the last of them."""

    upto: tuple[tuple[Decimal | int, int], ...]
    above: int

    def points(self, charted: Decimal) -> int:
        for highest, points in self.upto:
            if charted <= highest:
                return points
        return self.above


RESPIRATION_BANDS = Bands(upto=((8, 3), (11, 1), (20, 0), (24, 2)), above=3)
SPO2_SCALE_1_BANDS = Bands(upto=((91, 3), (93, 2), (95, 1)), above=0)
SPO2_SCALE_2_ON_AIR_BANDS = Bands(upto=((83, 3), (85, 2), (87, 1)), above=0)
SPO2_SCALE_2_ON_OXYGEN_BANDS = Bands(
    upto=((83, 3), (85, 2), (87, 1), (92, 0), (94, 1), (96, 2)), above=3
)
SYSTOLIC_BANDS = Bands(upto=((90, 3), (100, 2), (110, 1), (219, 0)), above=3)
PULSE_BANDS = Bands(upto=((40, 3), (50, 1), (90, 0), (110, 1), (130, 2)), above=3)
TEMPERATURE_BANDS = Bands(
    upto=(
        (Decimal("35.0"), 3),
        (Decimal("36.0"), 1),
        (Decimal("38.0"), 0),
        (Decimal("39.0"), 1),
    ),
    above=2,
)
SCALE_2_AIR_ONLY_ABOVE = 92  # above this, scale 2 depends on air or oxygen
OXYGEN_POINTS = 2
CONSCIOUSNESS_POINTS = MappingProxyType({"A": 0, "C": 3, "V": 3, "P": 3, "U": 3})

# Argument of news2() -> the chart parameter it scores (the key in subscores).
ARGUMENTS: Mapping[str, str] = MappingProxyType(
    {
        "respiration_rate": "respiration_rate",
        "spo2": "spo2",
        "on_oxygen": "air_or_oxygen",
        "systolic_bp": "systolic_bp",
        "pulse_rate": "pulse",
        "consciousness": "consciousness",
        "temperature_c": "temperature",
    }
)
PARAMETERS: tuple[str, ...] = tuple(ARGUMENTS.values())


@dataclass(frozen=True)
class Measure:
    """How a numeric input is charted: its unit, the precision the chart rounds it
    to, and the inclusive limits outside which a value is an entry, unit or sensor
    error rather than a patient (a "temperature" above 50 is Fahrenheit)."""

    unit: str
    low: int
    high: int
    step: Decimal = Decimal(1)


MEASURES: Mapping[str, Measure] = MappingProxyType(
    {
        "respiration_rate": Measure("breaths/min", 0, 120),
        "spo2": Measure("%", 0, 100),
        "systolic_bp": Measure("mmHg", 0, 400),
        "pulse_rate": Measure("beats/min", 0, 400),
        "temperature_c": Measure("degC", 10, 50, step=Decimal("0.1")),
    }
)

_ROUTINE = ("Minimum 12-hourly", "Continue routine NEWS monitoring.")
_NURSE = (
    "Minimum 4-6-hourly",
    "Inform the registered nurse, who must assess the patient and decide whether "
    "monitoring should be more frequent or care escalated.",
)
_RESPONSES: Mapping[Risk, tuple[str, str]] = MappingProxyType(
    {
        "low": _NURSE,
        "low-medium": (
            "Minimum 1-hourly",
            "Urgent ward-based response: the registered nurse informs the medical "
            "team caring for the patient, who review and decide whether care "
            "should be escalated.",
        ),
        "medium": (
            "Minimum 1-hourly",
            "Urgent response: the registered nurse immediately informs the medical "
            "team caring for the patient and requests urgent assessment by a "
            "clinician or team with core competencies in acute illness; care in an "
            "environment with monitoring facilities.",
        ),
        "high": (
            "Continuous monitoring of vital signs",
            "Emergency response: the registered nurse immediately informs the "
            "medical team (at least specialist registrar level); emergency "
            "assessment by a team with critical care competencies, including "
            "advanced airway management skills; consider transfer to a level 2 or "
            "3 facility (HDU or ICU); care in an environment with monitoring "
            "facilities.",
        ),
    }
)


class News2Dict(TypedDict):
    total: int
    risk: Risk
    subscores: dict[str, int]
    missing: list[str]
    partial: bool
    spo2_scale: int
    monitoring: str
    response: str


@dataclass(frozen=True)
class News2:
    """A NEWS2 score; `total` and `risk` are derived from `subscores`.

    `subscores` holds the measured parameters only (read-only mapping, chart
    names, see `PARAMETERS`); `missing` lists the others in chart order.
    """

    subscores: Mapping[str, int]
    missing: tuple[str, ...] = ()
    spo2_scale: int = 1
    total: int = field(init=False)
    risk: Risk = field(init=False)

    def __post_init__(self) -> None:
        subscores = MappingProxyType(dict(self.subscores))
        total = sum(subscores.values())
        object.__setattr__(self, "subscores", subscores)
        object.__setattr__(self, "missing", tuple(self.missing))
        object.__setattr__(self, "total", total)
        object.__setattr__(self, "risk", _risk(total, subscores.values()))

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def monitoring(self) -> str:
        """Minimum frequency of observations (RCP Chart 4)."""
        return self._clinical_response()[0]

    @property
    def response(self) -> str:
        """Clinical response the band calls for (RCP Charts 3 and 4)."""
        return self._clinical_response()[1]

    def _clinical_response(self) -> tuple[str, str]:
        if self.total == 0 and self.complete:
            return _ROUTINE
        return _RESPONSES[self.risk]

    def to_dict(self) -> News2Dict:
        return {
            "total": self.total,
            "risk": self.risk,
            "subscores": dict(self.subscores),
            "missing": list(self.missing),
            "partial": self.partial,
            "spo2_scale": self.spo2_scale,
            "monitoring": self.monitoring,
            "response": self.response,
        }


def news2(
    *,
    respiration_rate: Number | None,
    spo2: Number | None,
    on_oxygen: bool | None,
    systolic_bp: Number | None,
    pulse_rate: Number | None,
    consciousness: str | None,
    temperature_c: Number | None,
    spo2_scale: int = 1,
) -> News2:
    """Score vital signs on the RCP NEWS2 chart; None means not measured.

    `consciousness` is an ACVPU letter ("C" is new confusion). Raises ValueError
    for impossible values and TypeError for values that are not numbers.
    """
    _check_scale(spo2_scale)
    scored = {
        "respiration_rate": _banded("respiration_rate", respiration_rate),
        "spo2": _spo2_points(spo2, on_oxygen, spo2_scale),
        "air_or_oxygen": _oxygen_points(on_oxygen),
        "systolic_bp": _banded("systolic_bp", systolic_bp),
        "pulse": _banded("pulse_rate", pulse_rate),
        "consciousness": _consciousness_points(consciousness),
        "temperature": _banded("temperature_c", temperature_c),
    }
    return News2(
        subscores={name: p for name, p in scored.items() if p is not None},
        missing=tuple(name for name, p in scored.items() if p is None),
        spo2_scale=spo2_scale,
    )


def _risk(total: int, points: Collection[int]) -> Risk:
    # Chart 3: the aggregate outranks a single red score once it reaches 5.
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    if 3 in points:
        return "low-medium"
    return "low"


def _check_scale(spo2_scale: int) -> None:
    if type(spo2_scale) is not int or spo2_scale not in (1, 2):
        raise ValueError(f"spo2_scale must be 1 or 2, got {spo2_scale!r}")


_BANDS: Mapping[str, Bands] = MappingProxyType(
    {
        "respiration_rate": RESPIRATION_BANDS,
        "systolic_bp": SYSTOLIC_BANDS,
        "pulse_rate": PULSE_BANDS,
        "temperature_c": TEMPERATURE_BANDS,
    }
)


def _banded(name: str, value: Number | None) -> int | None:
    if value is None:
        return None
    return _BANDS[name].points(_charted(name, value))


def _spo2_points(spo2: Number | None, on_oxygen: bool | None, scale: int) -> int | None:
    if spo2 is None:
        return None
    charted = _charted("spo2", spo2)
    if scale == 1:
        return SPO2_SCALE_1_BANDS.points(charted)
    if on_oxygen is None and charted > SCALE_2_AIR_ONLY_ABOVE:
        return None
    bands = SPO2_SCALE_2_ON_OXYGEN_BANDS if on_oxygen else SPO2_SCALE_2_ON_AIR_BANDS
    return bands.points(charted)


def _oxygen_points(on_oxygen: bool | None) -> int | None:
    if on_oxygen is None:
        return None
    if not isinstance(on_oxygen, bool):
        raise TypeError(f"on_oxygen must be True, False or None, got {on_oxygen!r}")
    return OXYGEN_POINTS if on_oxygen else 0


def _consciousness_points(consciousness: str | None) -> int | None:
    if consciousness is None:
        return None
    if consciousness not in CONSCIOUSNESS_POINTS:
        raise ValueError(
            f"consciousness must be one of A, C, V, P, U (ACVPU), got {consciousness!r}"
        )
    return CONSCIOUSNESS_POINTS[consciousness]


def _charted(name: str, value: Number) -> Decimal:
    """Validate `value` and round it, half up, to the chart's precision."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    measure = MEASURES[name]
    if not measure.low <= value <= measure.high:
        raise ValueError(
            f"{name} must be between {measure.low} and {measure.high} "
            f"{measure.unit}, got {value}"
        )
    # str() gives the shortest decimal text of a float: 38.05, not 38.0499999...
    return Decimal(str(value)).quantize(measure.step, rounding=ROUND_HALF_UP)


# --- the patient's current inputs from their latest readings ---------------------


class News2Inputs(TypedDict):
    respiration_rate: Number | None
    spo2: Number | None
    on_oxygen: bool | None
    systolic_bp: Number | None
    pulse_rate: Number | None
    consciousness: str | None
    temperature_c: Number | None


@dataclass(frozen=True)
class Reading:
    """One observation: `continuous` if streamed (wearable), else a spot check."""

    value: Value
    time: datetime
    continuous: bool = False

    def __post_init__(self) -> None:
        _require_aware("Reading.time", self.time)


@dataclass(frozen=True)
class FreshnessWindows:
    """How old a reading may be and still count as the patient's current state."""

    spot: timedelta = timedelta(hours=1)
    continuous: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        if self.spot <= timedelta(0) or self.continuous <= timedelta(0):
            raise ValueError("freshness windows must be positive")

    def for_reading(self, reading: Reading) -> timedelta:
        return self.continuous if reading.continuous else self.spot


@dataclass(frozen=True)
class LatestInputs:
    """Keyword arguments for `news2` (add `spo2_scale`), and what was too old.

    `stale` uses the argument names of `news2`; `ARGUMENTS` maps them to the
    chart names that `News2.missing` reports.
    """

    inputs: News2Inputs
    stale: tuple[str, ...]


def latest_inputs(
    readings: Mapping[str, Reading | None],
    *,
    now: datetime,
    windows: FreshnessWindows | None = None,
) -> LatestInputs:
    """Keep each input's latest reading only if it is fresh at `now`.

    `readings` maps `news2` argument names to the latest reading (or None). A
    reading is fresh when it is at most its window away from `now`, boundary
    included, on either side: a timestamp further in the future than the window
    is a broken clock, not a current value, so it is reported as stale too.
    """
    _require_aware("now", now)
    unknown = sorted(set(readings) - set(ARGUMENTS))
    if unknown:
        raise ValueError(f"unknown NEWS2 inputs {unknown}; expected {list(ARGUMENTS)}")
    windows = windows or FreshnessWindows()
    inputs: dict[str, Value | None] = dict.fromkeys(ARGUMENTS)
    stale: list[str] = []
    for name in ARGUMENTS:
        reading = readings.get(name)
        if reading is None:
            continue
        if abs(now - reading.time) <= windows.for_reading(reading):
            inputs[name] = reading.value
        else:
            stale.append(name)
    return LatestInputs(inputs=cast(News2Inputs, inputs), stale=tuple(stale))


def _require_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment!r}")
