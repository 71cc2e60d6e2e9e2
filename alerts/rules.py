"""Alert rules: from measurements to the conditions a clinician must hear about.

Pure module. Each rule looks at one kind of input and says, for every alert kind it
owns, whether the condition holds now (``Finding``) or has cleared (``Clear``).
The engine (alerts/services.py) turns those into alerts: persistence delays,
one open alert per subject and kind, latching, resolution.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

Priority = Literal["high", "medium", "low"]
Category = Literal["physiological", "technical", "security"]

PRIORITY_RANK: dict[str, int] = {"low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True)
class Kind:
    name: str
    category: Category
    title: str
    delay: timedelta = timedelta(0)  # how long the condition must persist


KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind("news2", "physiological", "NEWS2 band reached"),
        Kind(
            "heart_rate_high", "physiological", "Heart rate high", timedelta(seconds=10)
        ),
        Kind(
            "heart_rate_low", "physiological", "Heart rate low", timedelta(seconds=10)
        ),
        Kind("spo2_low", "physiological", "SpO2 low", timedelta(seconds=15)),
        Kind(
            "respiratory_rate_high",
            "physiological",
            "Respiratory rate high",
            timedelta(seconds=30),
        ),
        Kind(
            "respiratory_rate_low",
            "physiological",
            "Respiratory rate low",
            timedelta(seconds=30),
        ),
        Kind("systolic_bp_high", "physiological", "Systolic blood pressure high"),
        Kind("systolic_bp_low", "physiological", "Systolic blood pressure low"),
        Kind("temperature_high", "physiological", "Temperature high"),
        Kind("temperature_low", "physiological", "Temperature low"),
        Kind("af", "physiological", "Atrial fibrillation"),
        Kind("vf", "physiological", "Ventricular fibrillation or flutter"),
        Kind("asystole", "physiological", "Asystole"),
        Kind("pause", "physiological", "Pause"),
        Kind(
            "bradycardia",
            "physiological",
            "Sustained bradycardia",
            timedelta(seconds=20),
        ),
        Kind(
            "tachycardia",
            "physiological",
            "Sustained tachycardia",
            timedelta(seconds=20),
        ),
        Kind("device_stale", "technical", "No data from device"),
        Kind(
            "ecg_signal_poor",
            "technical",
            "ECG signal poor or lead off",
            timedelta(seconds=20),
        ),
        Kind("battery_low", "technical", "Device battery low"),
        Kind("clock_skew", "technical", "Device clock wrong"),
        Kind("integrity_failure", "technical", "Upload failed its integrity check"),
        Kind(
            "qkd_eavesdropping", "security", "Eavesdropping suspected on the QKD link"
        ),
        Kind("qkd_pool_exhausted", "security", "QKD key pool exhausted"),
    ]
}


@dataclass(frozen=True)
class Finding:
    """The condition of ``kind`` holds at ``at``: why, and how urgent."""

    kind: str
    priority: Priority
    at: datetime
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Clear:
    """The condition of ``kind`` does not hold at ``at``."""

    kind: str
    at: datetime


Outcome = Finding | Clear


def of_an_ended_episode(
    at: datetime, last_seen: datetime, cleared: datetime | None
) -> bool:
    """Whether a finding at ``at`` is late data (a device's stored backlog, or a
    batch processed out of order) from an episode whose alert is over: no newer
    than what that alert last saw, or older than the reading that cleared it.
    The server's engine and the edge box both ignore such a finding."""
    return at <= last_seen or (cleared is not None and at < cleared)


# --- vital-sign thresholds ---


@dataclass(frozen=True)
class Limit:
    code: str
    label: str
    unit: str
    low: float | None
    high: float | None
    low_kind: str | None
    high_kind: str | None
    low_priority: Priority = "medium"
    high_priority: Priority = "medium"

    def below(self, value: float) -> bool:
        return self.low is not None and value < self.low

    def above(self, value: float) -> bool:
        return self.high is not None and value > self.high

    def breached(self, value: float) -> bool:
        return self.below(value) or self.above(value)


# Defaults sit beyond NEWS2's own bands: NEWS2 watches the trend, these catch a single
# dangerous value. A patient's threshold_overrides replace low and/or high per code.
LIMITS: dict[str, Limit] = {
    lim.code: lim
    for lim in [
        Limit(
            "8867-4",
            "heart rate",
            "/min",
            40,
            130,
            "heart_rate_low",
            "heart_rate_high",
            "high",
            "medium",
        ),
        Limit("2708-6", "SpO2", "%", 90, None, "spo2_low", None),
        Limit("59408-5", "SpO2", "%", 90, None, "spo2_low", None),
        Limit(
            "9279-1",
            "respiratory rate",
            "/min",
            8,
            25,
            "respiratory_rate_low",
            "respiratory_rate_high",
            "high",
            "medium",
        ),
        Limit(
            "8480-6",
            "systolic BP",
            "mm[Hg]",
            90,
            220,
            "systolic_bp_low",
            "systolic_bp_high",
        ),
        Limit(
            "8310-5",
            "temperature",
            "Cel",
            35.0,
            39.1,
            "temperature_low",
            "temperature_high",
        ),
    ]
}


def effective_limit(code: str, overrides: Mapping[str, Any]) -> Limit | None:
    base = LIMITS.get(code)
    if base is None:
        return None
    own = overrides.get(code) or {}
    return Limit(
        base.code,
        base.label,
        base.unit,
        own.get("low", base.low),
        own.get("high", base.high),
        base.low_kind,
        base.high_kind,
        base.low_priority,
        base.high_priority,
    )


def threshold_outcomes(
    code: str, value: float, at: datetime, overrides: Mapping[str, Any]
) -> list[Outcome]:
    limit = effective_limit(code, overrides)
    if limit is None:
        return []
    return [
        *_side(limit, value, at, "low", limit.low_kind, limit.low, limit.below(value)),
        *_side(
            limit, value, at, "high", limit.high_kind, limit.high, limit.above(value)
        ),
    ]


def _side(
    limit: Limit,
    value: float,
    at: datetime,
    side: str,
    kind: str | None,
    threshold: float | None,
    beyond: bool,
) -> list[Outcome]:
    if kind is None or threshold is None:
        return []
    if not beyond:
        return [Clear(kind, at)]
    priority = limit.low_priority if side == "low" else limit.high_priority
    word = "below" if side == "low" else "above"
    return [
        Finding(
            kind,
            priority,
            at,
            f"{limit.label} {value:g} {limit.unit} is {word} the limit "
            f"{threshold:g} {limit.unit}",
            {
                "code": limit.code,
                "value": value,
                "unit": limit.unit,
                "rule": f"{side} limit",
                "threshold": threshold,
            },
        )
    ]


# --- NEWS2 ---


# The NEWS2 chart's parameters as a clinician reads them.
NEWS2_LABELS = {
    "respiration_rate": "respiration rate",
    "spo2": "SpO2",
    "air_or_oxygen": "air or oxygen",
    "systolic_bp": "systolic BP",
    "pulse": "pulse",
    "consciousness": "consciousness",
    "temperature": "temperature",
}


def _label(parameter: str) -> str:
    return NEWS2_LABELS.get(parameter, parameter)


def news2_outcome(
    *,
    total: int,
    risk: str,
    subscores: Mapping[str, int],
    missing: Iterable[str],
    at: datetime,
) -> Outcome:
    """Medium for 5–6 or a single parameter scoring 3, high for 7 or more."""
    priority: Priority | None = {
        "high": "high",
        "medium": "medium",
        "low-medium": "medium",
    }.get(risk)  # type: ignore[assignment]
    if priority is None:
        return Clear("news2", at)
    threes = [_label(name) for name, points in subscores.items() if points == 3]
    why = f"NEWS2 {total} ({risk})"
    if risk == "low-medium":
        why += f": {', '.join(threes)} scored 3"
    missing = list(missing)
    if missing:
        why += f"; partial score, not measured: {', '.join(map(_label, missing))}"
    return Finding(
        "news2",
        priority,
        at,
        why,
        {
            "total": total,
            "risk": risk,
            "subscores": dict(subscores),
            "missing": missing,
            "rule": "NEWS2 band (RCP 2017)",
            "threshold": "7 high; 5–6 or a single 3 medium",
        },
    )


# --- ECG ---

RHYTHM_NAMES = {"vf": "ventricular fibrillation or flutter"}
RHYTHM_KINDS: dict[str, tuple[str, Priority]] = {
    "vf": ("vf", "high"),
    "af": ("af", "medium"),
    "asystole": ("asystole", "high"),
    "pause": ("pause", "high"),
    "bradycardia": ("bradycardia", "medium"),
    "tachycardia": ("tachycardia", "medium"),
}


def ecg_outcomes(
    *,
    rhythm: str,
    usable: bool,
    quality: float,
    heart_rate_bpm: float | None,
    at: datetime,
) -> list[Outcome]:
    # VF fails the beat-based quality gate, but it is judged on its own
    # (telemetry.ecg.vf) and must never read as noise.
    if rhythm != "vf" and (not usable or rhythm == "noise"):
        # Noise says nothing about the rhythm: leave rhythm alerts as they are.
        return [
            Finding(
                "ecg_signal_poor",
                "low",
                at,
                f"ECG signal quality {quality:.2f}: check the electrodes",
                {"quality": quality, "rule": "usable signal", "threshold": 0.6},
            )
        ]
    outcomes: list[Outcome] = [Clear("ecg_signal_poor", at)]
    for name, (kind, priority) in RHYTHM_KINDS.items():
        if rhythm != name:
            outcomes.append(Clear(kind, at))
            continue
        # The rate of the beats around a VF stretch says nothing about the VF.
        rate = (
            f" at {heart_rate_bpm:.0f} bpm" if heart_rate_bpm and kind != "vf" else ""
        )
        outcomes.append(
            Finding(
                kind,
                priority,
                at,
                f"ECG rhythm: {RHYTHM_NAMES.get(name, name)}{rate}",
                {
                    "rhythm": rhythm,
                    "heart_rate_bpm": heart_rate_bpm,
                    "quality": quality,
                    "rule": "ECG rhythm analysis",
                },
            )
        )
    return outcomes


# --- devices ---

BATTERY_LOW_PCT = 20
CLOCK_SKEW_LIMIT = timedelta(minutes=2)


def battery_outcome(battery_pct: int | None, at: datetime) -> list[Outcome]:
    if battery_pct is None:
        return []
    if battery_pct >= BATTERY_LOW_PCT:
        return [Clear("battery_low", at)]
    return [
        Finding(
            "battery_low",
            "low",
            at,
            f"battery at {battery_pct} %",
            {
                "battery_pct": battery_pct,
                "rule": "battery",
                "threshold": BATTERY_LOW_PCT,
            },
        )
    ]


def clock_outcome(skew: timedelta, at: datetime) -> list[Outcome]:
    if abs(skew) <= CLOCK_SKEW_LIMIT:
        return [Clear("clock_skew", at)]
    seconds = skew.total_seconds()
    word = "ahead" if seconds > 0 else "behind"
    return [
        Finding(
            "clock_skew",
            "low",
            at,
            f"device clock is {abs(seconds):.0f} s {word} of the server",
            {
                "skew_s": seconds,
                "rule": "clock skew",
                "threshold": CLOCK_SKEW_LIMIT.total_seconds(),
            },
        )
    ]
