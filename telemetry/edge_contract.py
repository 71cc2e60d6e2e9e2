"""The edge upload contract: what a gateway sends besides raw readings.

An edge batch carries the vitals and raw ECG strips of the batch contract
(telemetry/contract.py, checked by the same code), plus what the gateway worked out
from them: ECG features per analysed window, NEWS2 results and alert outcomes
(Finding/Clear of alerts/rules.py). ``fulfils`` names the clinicians' ECG fetch
requests that this batch answers (its ``ecg`` holds what the gateway still kept).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, ValidationError

from .contract import (
    ECG_LEADS,
    BatchIn,
    EcgSegmentIn,
    ObservationIn,
    Problem,
    _check_time,
    _path,
    _Strict,
    check_batch,
)

# Alert kinds a gateway evaluates: everything the rules derive from vitals, NEWS2
# and ECG. Device bookkeeping (stale, battery, clock) and security stay on the
# server, which is the only one that can see them.
EDGE_KINDS = frozenset(
    {
        "news2",
        "heart_rate_high",
        "heart_rate_low",
        "spo2_low",
        "respiratory_rate_high",
        "respiratory_rate_low",
        "systolic_bp_high",
        "systolic_bp_low",
        "temperature_high",
        "temperature_low",
        "vf",
        "af",
        "asystole",
        "pause",
        "bradycardia",
        "tachycardia",
        "ecg_signal_poor",
    }
)
DEVICE_KINDS = frozenset({"ecg_signal_poor"})  # raised on the gateway, not the patient
POLICIES = ("forward-all", "edge-first")


class EdgeFeaturesIn(_Strict):
    """``EcgFeatures.to_dict()`` of one analysed window, with where it came from."""

    lead: Literal[ECG_LEADS]  # type: ignore[valid-type]
    fs_hz: int = Field(ge=100, le=1000)
    start: AwareDatetime
    duration_s: float = Field(gt=0, le=60)
    rhythm: str = Field(max_length=16)
    usable: bool
    quality: float = Field(ge=0, le=1)
    beat_count: int = Field(ge=0, le=1000)
    heart_rate_bpm: float | None = Field(default=None, ge=0, le=400)
    rr_ms: float | None = None
    sdnn_ms: float | None = None
    rmssd_ms: float | None = None
    pnn50: float | None = None
    qrs_ms: float | None = None
    pr_ms: float | None = None
    qt_ms: float | None = None
    qtc_ms: float | None = None
    qtc_bazett_ms: float | None = None
    qtc_fridericia_ms: float | None = None


class EdgeScoreIn(_Strict):
    as_of: AwareDatetime
    total: int = Field(ge=0, le=20)
    risk: str = Field(max_length=12)
    partial: bool
    subscores: dict[str, int]
    missing: list[str] = Field(max_length=8)
    spo2_scale: Literal[1, 2]


class OutcomeIn(_Strict):
    type: Literal["finding", "clear"]
    kind: str = Field(max_length=32)
    at: AwareDatetime
    priority: Literal["high", "medium", "low"] | None = None
    message: str = Field(default="", max_length=500)
    evidence: dict[str, Any] = Field(default_factory=dict)


class EdgeBatchIn(_Strict):
    batch_id: UUID
    sent_at: AwareDatetime
    policy: Literal[POLICIES]  # type: ignore[valid-type]
    battery_pct: int | None = Field(default=None, ge=0, le=100)
    observations: list[ObservationIn] = Field(default_factory=list, max_length=10_000)
    ecg: list[EcgSegmentIn] = Field(default_factory=list, max_length=64)
    features: list[EdgeFeaturesIn] = Field(default_factory=list, max_length=2_000)
    scores: list[EdgeScoreIn] = Field(default_factory=list, max_length=2_000)
    outcomes: list[OutcomeIn] = Field(default_factory=list, max_length=5_000)
    fulfils: list[UUID] = Field(default_factory=list, max_length=64)


def parse_edge_batch(body: bytes) -> tuple[EdgeBatchIn | None, list[Problem]]:
    try:
        return EdgeBatchIn.model_validate_json(body), []
    except ValidationError as error:
        return None, [Problem(_path(e["loc"]), e["msg"]) for e in error.errors()]


def raw_part(edge: EdgeBatchIn) -> BatchIn:
    """The readings of an edge batch as a plain batch (already validated)."""
    return BatchIn.model_construct(
        batch_id=edge.batch_id,
        sent_at=edge.sent_at,
        battery_pct=edge.battery_pct,
        observations=edge.observations,
        ecg=edge.ecg,
    )


def check_edge_batch(edge: EdgeBatchIn, *, now: datetime) -> list[Problem]:
    problems = check_batch(raw_part(edge), now=now)
    for i, features in enumerate(edge.features):
        problems += _check_time(f"features[{i}].start", features.start, now)
    for i, score in enumerate(edge.scores):
        problems += _check_time(f"scores[{i}].as_of", score.as_of, now)
    for i, outcome in enumerate(edge.outcomes):
        problems += _check_outcome(f"outcomes[{i}]", outcome, now)
    return problems


def _check_outcome(path: str, outcome: OutcomeIn, now: datetime) -> Iterator[Problem]:
    yield from _check_time(f"{path}.at", outcome.at, now)
    if outcome.kind not in EDGE_KINDS:
        yield Problem(
            f"{path}.kind",
            f"{outcome.kind!r} is not a kind a gateway raises: one of "
            + ", ".join(sorted(EDGE_KINDS)),
        )
    if outcome.type == "finding" and (outcome.priority is None or not outcome.message):
        yield Problem(path, "a finding needs a priority and a message")


def edge_fingerprint(edge: EdgeBatchIn) -> str:
    """Everything but ``sent_at``, as for plain batches."""
    content = edge.model_dump(mode="json", exclude={"sent_at"})
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
