"""The device upload contract: what a batch may contain, checked without Django.

Parsing (types, JSON) is pydantic's job, in strict mode: numbers sent as strings,
NaN and Infinity are refused. The clinical checks (codes, units, plausible ranges,
timestamps) follow here, so that every error names the field a device maker must fix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

MAX_FUTURE = timedelta(minutes=5)
MIN_OFFSET, MAX_OFFSET = timedelta(hours=-12), timedelta(hours=14)
MAX_AGE = timedelta(days=7)
MAX_ECG_SECONDS = 60
MAX_ECG_UV = 100_000  # 100 mV: beyond any real surface ECG
ECG_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
ACVPU = ("A", "C", "V", "P", "U")
ROOM_AIR_FIO2_PCT = 21.0


def _same(x: float) -> float:
    return x


def _fahrenheit_to_celsius(x: float) -> float:
    return (x - 32.0) * 5.0 / 9.0


@dataclass(frozen=True)
class Unit:
    """A unit a code accepts: how to convert to the stored unit, and the plausible
    range in the stored unit."""

    stored: str
    low: float
    high: float
    convert: Callable[[float], float] = _same


@dataclass(frozen=True)
class Code:
    name: str
    units: dict[str, Unit]


HEART_RATE = "8867-4"
RESPIRATORY_RATE = "9279-1"
SPO2 = "2708-6"
SPO2_PULSE_OX = "59408-5"
BODY_TEMPERATURE = "8310-5"
SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"
CONSCIOUSNESS = "80288-4"
INHALED_OXYGEN = "3150-0"

CODES: dict[str, Code] = {
    HEART_RATE: Code("heart rate", {"/min": Unit("/min", 0, 350)}),
    RESPIRATORY_RATE: Code("respiratory rate", {"/min": Unit("/min", 0, 100)}),
    SPO2: Code("oxygen saturation", {"%": Unit("%", 0, 100)}),
    SPO2_PULSE_OX: Code("oxygen saturation (pulse oximetry)", {"%": Unit("%", 0, 100)}),
    BODY_TEMPERATURE: Code(
        "body temperature",
        {
            "Cel": Unit("Cel", 25, 45),
            "[degF]": Unit("Cel", 25, 45, _fahrenheit_to_celsius),
        },
    ),
    SYSTOLIC: Code("systolic blood pressure", {"mm[Hg]": Unit("mm[Hg]", 30, 300)}),
    DIASTOLIC: Code("diastolic blood pressure", {"mm[Hg]": Unit("mm[Hg]", 10, 250)}),
    CONSCIOUSNESS: Code("level of consciousness", {"{ACVPU}": Unit("{ACVPU}", 0, 0)}),
    INHALED_OXYGEN: Code(
        "inhaled oxygen",
        {
            "%": Unit("%", ROOM_AIR_FIO2_PCT, 100),
            "L/min": Unit("L/min", 0, 70),
        },
    ),
}

# news2() argument (telemetry/scoring.py) → the codes that feed it (the latest of
# them counts): one map for the server's workers and the edge gateway.
NEWS2_CODES: dict[str, tuple[str, ...]] = {
    "respiration_rate": (RESPIRATORY_RATE,),
    "spo2": (SPO2, SPO2_PULSE_OX),
    "on_oxygen": (INHALED_OXYGEN,),
    "systolic_bp": (SYSTOLIC,),
    "pulse_rate": (HEART_RATE,),
    "consciousness": (CONSCIOUSNESS,),
    "temperature_c": (BODY_TEMPERATURE,),
}
SCORED_CODES = frozenset(code for codes in NEWS2_CODES.values() for code in codes)
# code → the news2() argument it feeds
NEWS2_INPUT_OF = {code: name for name, codes in NEWS2_CODES.items() for code in codes}


def news2_value(
    name: str, value: float | None, text: str, unit: str
) -> float | str | bool | None:
    """A stored reading as the news2() argument ``name``: the ACVPU letter, "on
    oxygen" when the inhaled oxygen is above room air (or any flow), else the
    number in its stored unit."""
    if name == "consciousness":
        return text
    if value is None:
        return None
    if name == "on_oxygen":
        return value > (ROOM_AIR_FIO2_PCT if unit == "%" else 0.0)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(
        strict=True, allow_inf_nan=False, extra="forbid", frozen=True
    )


class ObservationIn(_Strict):
    code: str = Field(max_length=16, examples=[HEART_RATE])
    value: int | float | str = Field(
        description="a number; a letter A, C, V, P or U for level of consciousness"
    )
    unit: str = Field(max_length=16, examples=["/min"])
    time: AwareDatetime = Field(
        description="when the device measured it (ISO 8601 with zone)"
    )


class EcgSegmentIn(_Strict):
    lead: Literal[ECG_LEADS]  # type: ignore[valid-type]
    fs_hz: int = Field(ge=100, le=1000, description="sampling rate, 100–1000 Hz")
    start: AwareDatetime
    unit: Literal["uV", "mV"] = Field(description="uV: integers; mV: numbers")
    samples: list[int | float] = Field(min_length=1, max_length=MAX_ECG_SECONDS * 1000)


class BatchIn(_Strict):
    batch_id: UUID = Field(
        description="chosen by the device; the same ID means the same batch"
    )
    sent_at: AwareDatetime
    battery_pct: int | None = Field(default=None, ge=0, le=100)
    observations: list[ObservationIn] = Field(default_factory=list, max_length=10_000)
    ecg: list[EcgSegmentIn] = Field(default_factory=list, max_length=64)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str


@dataclass(frozen=True)
class Reading:
    """One observation as stored: numbers in the stored unit, ACVPU as a letter."""

    code: str
    value: float | None
    text: str
    unit: str
    time: datetime


def parse_batch(body: bytes) -> tuple[BatchIn | None, list[Problem]]:
    try:
        return BatchIn.model_validate_json(body), []
    except ValidationError as error:
        return None, [Problem(_path(e["loc"]), e["msg"]) for e in error.errors()]


def _path(loc: tuple) -> str:
    path = ""
    for part in loc:
        path += (
            f"[{part}]"
            if isinstance(part, int)
            else (f".{part}" if path else str(part))
        )
    return path or "(body)"


def check_batch(batch: BatchIn, *, now: datetime) -> list[Problem]:
    problems = list(_check_time("sent_at", batch.sent_at, now, allow_old=True))
    for i, obs in enumerate(batch.observations):
        problems += _check_observation(f"observations[{i}]", obs, now)
    for i, segment in enumerate(batch.ecg):
        problems += _check_ecg(f"ecg[{i}]", segment, now)
    problems += _check_blood_pressure_pairs(batch.observations)
    return problems


def _check_time(
    path: str, when: datetime, now: datetime, allow_old: bool = False
) -> Iterator[Problem]:
    offset = when.utcoffset() or timedelta(0)
    try:
        when.astimezone(UTC)
    except OverflowError:  # 0001-01-01T01:00+05:00 is before year 1 in UTC
        yield Problem(
            path, "is outside the years 1-9999 in UTC: check the device clock"
        )
        return
    if not MIN_OFFSET <= offset <= MAX_OFFSET:
        yield Problem(
            path,
            "has a time zone offset no place uses "
            "(real ones run from -12:00 to +14:00)",
        )
    elif when > now + MAX_FUTURE:
        yield Problem(
            path,
            f"is {_ago(when - now)} in the future (more than 5 minutes): "
            "check the device clock",
        )
    elif not allow_old and when < now - MAX_AGE:
        yield Problem(
            path, f"is {_ago(now - when)} old: data older than 7 days is not accepted"
        )


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 1440} days" if minutes >= 2880 else f"{minutes} minutes"


def _check_observation(
    path: str, obs: ObservationIn, now: datetime
) -> Iterator[Problem]:
    yield from _check_time(f"{path}.time", obs.time, now)
    code = CODES.get(obs.code)
    if code is None:
        yield Problem(
            f"{path}.code",
            f"unknown code {obs.code!r}: accepted LOINC codes are " + ", ".join(CODES),
        )
        return
    unit = code.units.get(obs.unit)
    if unit is None:
        yield Problem(
            f"{path}.unit",
            f"{code.name} ({obs.code}) takes "
            + " or ".join(repr(u) for u in code.units)
            + f", not {obs.unit!r}",
        )
        return
    yield from _check_value(path, obs, code, unit)


def _check_value(
    path: str, obs: ObservationIn, code: Code, unit: Unit
) -> Iterator[Problem]:
    if obs.code == CONSCIOUSNESS:
        if obs.value not in ACVPU:
            yield Problem(
                f"{path}.value", "level of consciousness is one of A, C, V, P, U"
            )
        return
    if isinstance(obs.value, str):
        yield Problem(f"{path}.value", f"{code.name} must be a number, not a string")
        return
    stored = unit.convert(float(obs.value))
    if not unit.low <= stored <= unit.high:
        yield Problem(
            f"{path}.value",
            f"{code.name} {obs.value} {obs.unit} is not plausible "
            f"(accepted: {unit.low:g}–{unit.high:g} {unit.stored})",
        )


def _check_blood_pressure_pairs(observations: list[ObservationIn]) -> Iterator[Problem]:
    systolic = {o.time: o.value for o in observations if o.code == SYSTOLIC}
    for i, obs in enumerate(observations):
        high = systolic.get(obs.time)
        if (
            obs.code == DIASTOLIC
            and isinstance(high, int | float)
            and isinstance(obs.value, int | float)
            and obs.value >= high
        ):
            yield Problem(
                f"observations[{i}].value",
                f"diastolic {obs.value} is not below systolic {high} "
                "taken at the same time",
            )


def _check_ecg(path: str, segment: EcgSegmentIn, now: datetime) -> Iterator[Problem]:
    yield from _check_time(f"{path}.start", segment.start, now)
    if len(segment.samples) > MAX_ECG_SECONDS * segment.fs_hz:
        yield Problem(
            f"{path}.samples",
            f"{len(segment.samples)} samples at {segment.fs_hz} Hz "
            f"is more than {MAX_ECG_SECONDS} s: split the segment",
        )
    if segment.unit == "uV" and not all(type(s) is int for s in segment.samples):
        yield Problem(
            f"{path}.samples", "uV samples must be integers (send mV as numbers)"
        )
        return
    scale = 1000.0 if segment.unit == "mV" else 1.0
    if any(abs(s * scale) > MAX_ECG_UV for s in segment.samples):
        yield Problem(f"{path}.samples", "a sample exceeds ±100 mV: not a surface ECG")


def readings(batch: BatchIn) -> list[Reading]:
    out = []
    for obs in batch.observations:
        unit = CODES[obs.code].units[obs.unit]
        if isinstance(obs.value, str):
            out.append(Reading(obs.code, None, obs.value, unit.stored, obs.time))
        else:
            out.append(
                Reading(
                    obs.code, unit.convert(float(obs.value)), "", unit.stored, obs.time
                )
            )
    return out


def fingerprint(batch: BatchIn) -> str:
    """What makes two uploads "the same batch": everything but ``sent_at``, which a
    device may legitimately refresh when it retries."""
    content = batch.model_dump(mode="json", exclude={"sent_at"})
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class SealedBatchIn(_Strict):
    """A batch sealed with the session key (security/sealing.py)."""

    session_id: UUID
    counter: int = Field(
        ge=1, le=2**64 - 1, description="strictly increasing per session"
    )
    ciphertext: str = Field(
        min_length=24, description="base64 AES-256-GCM of the batch JSON"
    )


def parse_envelope(body: bytes) -> tuple[SealedBatchIn | None, list[Problem]]:
    try:
        return SealedBatchIn.model_validate_json(body), []
    except ValidationError as error:
        return None, [Problem(_path(e["loc"]), e["msg"]) for e in error.errors()]
