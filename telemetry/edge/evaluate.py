"""The server's analysis, run on the box: ECG windows, vital-sign limits, NEWS2.
Pure module (no Django): the same functions the workers call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from alerts import rules
from telemetry import contract as c
from telemetry.scoring import FreshnessWindows, Reading, latest_inputs, news2


@dataclass(frozen=True)
class WindowResult:
    features: dict[str, Any]  # the edge-batch "features" entry
    outcomes: list[rules.Outcome]


def analyse_window(
    samples_uv: list[int], fs_hz: int, lead: str, start: datetime
) -> WindowResult:
    from telemetry.analysis import analyze_ecg  # NeuroKit2: import when first used

    mv = np.asarray(samples_uv, dtype=np.float64) / 1000.0
    found = analyze_ecg(mv, float(fs_hz))
    features = {
        **found.to_dict(),
        "lead": lead,
        "fs_hz": fs_hz,
        "start": start.isoformat(),
        "duration_s": len(samples_uv) / fs_hz,
        "beat_count": len(found.r_peaks),
    }
    outcomes = rules.ecg_outcomes(
        rhythm=found.rhythm,
        usable=found.usable,
        quality=found.quality,
        heart_rate_bpm=found.heart_rate_bpm,
        at=start,
    )
    return WindowResult(features, outcomes)


@dataclass
class Vitals:
    """The latest reading of each NEWS2 input, and the patient's settings."""

    overrides: Mapping[str, Any] = field(default_factory=dict)
    spo2_scale: int = 1
    continuous: bool = True  # readings every minute or more often
    latest: dict[str, Reading] = field(default_factory=dict)

    def outcomes(self, reading: c.Reading) -> list[rules.Outcome]:
        """Limits for one reading; remembers it for NEWS2."""
        name = c.NEWS2_INPUT_OF.get(reading.code)
        if name is not None:
            value = c.news2_value(name, reading.value, reading.text, reading.unit)
            known = self.latest.get(name)
            if known is None or known.time <= reading.time:
                self.latest[name] = Reading(value, reading.time, self.continuous)
        if reading.value is None:
            return []
        return rules.threshold_outcomes(
            reading.code, reading.value, reading.time, self.overrides
        )

    def score(self, as_of: datetime) -> tuple[dict[str, Any], rules.Outcome]:
        fresh = latest_inputs(dict(self.latest), now=as_of, windows=FreshnessWindows())
        result = news2(**fresh.inputs, spo2_scale=self.spo2_scale)
        score = {
            "as_of": as_of.isoformat(),
            "total": result.total,
            "risk": result.risk,
            "partial": result.partial,
            "subscores": dict(result.subscores),
            "missing": list(result.missing),
            "spo2_scale": result.spo2_scale,
        }
        outcome = rules.news2_outcome(
            total=result.total,
            risk=result.risk,
            subscores=result.subscores,
            missing=result.missing,
            at=as_of,
        )
        return score, outcome


def outcome_json(outcome: rules.Outcome) -> dict[str, Any]:
    if isinstance(outcome, rules.Clear):
        return {"type": "clear", "kind": outcome.kind, "at": outcome.at.isoformat()}
    return {
        "type": "finding",
        "kind": outcome.kind,
        "at": outcome.at.isoformat(),
        "priority": outcome.priority,
        "message": outcome.message[:500],
        "evidence": _json_safe(dict(outcome.evidence)),
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, datetime | timedelta):
        return str(value)
    return value
