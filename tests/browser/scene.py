"""A ward worth looking at: patients with a day of readings, NEWS2 scores computed
by the real scorer, devices in every state and weeks of upload history."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from django.utils import timezone

from patients.models import CareTeam, Device, Patient
from patients.services import provision_device
from telemetry import contract as c
from telemetry.models import Batch, Observation
from telemetry.processing import score_patient


@dataclass(frozen=True)
class Profile:
    given: str
    family: str
    born: date
    sex: str
    vitals: dict[str, float | str]
    data_days: int
    last_seen_min: float = 1
    battery_pct: int = 80


UNITS = {
    c.HEART_RATE: "/min",
    c.RESPIRATORY_RATE: "/min",
    c.SPO2: "%",
    c.INHALED_OXYGEN: "%",
    c.SYSTOLIC: "mm[Hg]",
    c.DIASTOLIC: "mm[Hg]",
    c.BODY_TEMPERATURE: "Cel",
    c.CONSCIOUSNESS: "{ACVPU}",
}


def vitals(hr, rr, spo2, sbp, dbp, temp, avpu="A", o2=21) -> dict:
    return {
        c.HEART_RATE: hr,
        c.RESPIRATORY_RATE: rr,
        c.SPO2: spo2,
        c.INHALED_OXYGEN: o2,
        c.SYSTOLIC: sbp,
        c.DIASTOLIC: dbp,
        c.BODY_TEMPERATURE: temp,
        c.CONSCIOUSNESS: avpu,
    }


PROFILES = [
    Profile(
        "Priya",
        "Nair",
        date(1971, 5, 14),
        "female",
        vitals(74, 14, 98, 124, 78, 36.7),
        27,
    ),
    Profile(
        "Margaret",
        "Hughes",
        date(1941, 3, 2),
        "female",
        vitals(121, 25, 91, 99, 61, 38.7),
        22,
    ),
    Profile(
        "Walter",
        "Brennan",
        date(1946, 9, 30),
        "male",
        vitals(68, 16, 96, 138, 84, 36.5),
        9,
        last_seen_min=190,
        battery_pct=14,
    ),
    Profile(
        "Thomas",
        "Reid",
        date(1950, 7, 19),
        "male",
        vitals(108, 22, 95, 112, 70, 38.3),
        18,
    ),
    Profile(
        "Aisha",
        "Rahman",
        date(1962, 11, 5),
        "female",
        vitals(88, 18, 91, 131, 80, 37.1),
        30,
    ),
    Profile(
        "George",
        "Whitfield",
        date(1938, 1, 27),
        "male",
        vitals(93, 19, 96, 146, 88, 37.4),
        14,
    ),
]


@dataclass(frozen=True)
class WardPatient:
    patient: Patient
    hub_token: str
    patch_token: str


def add_ward(
    team: CareTeam, profiles: list[Profile] = PROFILES
) -> dict[str, WardPatient]:
    """The profiles' patients in the team, by family name."""
    added = [add_patient(team, n, p) for n, p in enumerate(profiles, start=10)]
    return {w.patient.family_name: w for w in added}


def add_patient(team: CareTeam, n: int, profile: Profile) -> WardPatient:
    patient = Patient.objects.create(
        organisation=team.organisation,
        mrn=f"RPM-{n:04d}",
        given_name=profile.given,
        family_name=profile.family,
        birth_date=profile.born,
        sex=profile.sex,
    )
    team.patients.add(patient)
    hub = provision_device(serial=f"HUB-{n}", kind=Device.Kind.HUB, patient=patient)
    patch = provision_device(
        serial=f"ECG-{n}", kind=Device.Kind.ECG_PATCH, patient=patient
    )
    add_history(patient, hub.device, profile)
    seen = timezone.now() - timedelta(minutes=profile.last_seen_min)
    Device.objects.filter(pk__in=[hub.device.pk, patch.device.pk]).update(
        last_seen_at=seen, battery_pct=profile.battery_pct
    )
    return WardPatient(patient, hub.token, patch.token)


def add_history(patient: Patient, device: Device, profile: Profile) -> None:
    """A day of readings every 10 minutes, drifting towards today's values, and an
    upload on each of the profile's data days."""
    now = timezone.now()
    batch = _batch(patient, device, now - timedelta(minutes=profile.last_seen_min))
    for day in range(1, profile.data_days):
        _batch(patient, device, now - timedelta(days=day))
    times = [
        now - timedelta(minutes=profile.last_seen_min + 10 * k) for k in range(144)
    ]
    rows = [
        Observation(
            patient=patient,
            device=device,
            batch=batch,
            code=code,
            value=None if isinstance(value, str) else _drift(code, value, k),
            text=value if isinstance(value, str) else "",
            unit=UNITS[code],
            time=t,
        )
        for k, t in enumerate(times)
        for code, value in profile.vitals.items()
    ]
    Observation.objects.bulk_create(rows)
    for t in times[::12]:
        score_patient(patient=patient, as_of=t)
    score_patient(patient=patient, as_of=times[0])


def _drift(code: str, value: float, k: int) -> float:
    """Older readings sit nearer normal, with a little breathing-like wobble."""
    normal = {
        c.HEART_RATE: 76,
        c.RESPIRATORY_RATE: 15,
        c.SPO2: 97,
        c.SYSTOLIC: 125,
        c.DIASTOLIC: 78,
        c.BODY_TEMPERATURE: 36.8,
    }
    if code not in normal:
        return value
    weight = min(k / 100, 1.0)
    wobble = math.sin(k / 3.0) * (0.1 if code == c.BODY_TEMPERATURE else 1.5)
    return round(value + (normal[code] - value) * weight + wobble, 1)


def _batch(patient: Patient, device: Device, at) -> Batch:
    return Batch.objects.create(
        device=device,
        patient=patient,
        batch_id=uuid.uuid4(),
        fingerprint="0" * 64,
        sent_at=at,
        received_at=at,
        observation_count=0,
        ecg_count=0,
        state=Batch.State.PROCESSED,
        queued_at=at,
        processed_at=at,
    )


def synthetic_ecg(seconds: float = 10, fs: int = 250, bpm: float = 72) -> list[int]:
    """A clean lead II in µV: P, QRS and T waves as Gaussians at a steady rate."""
    t = np.arange(int(seconds * fs)) / fs
    beat = 60.0 / bpm
    phase = (t % beat) - 0.25
    waves = [
        (-0.17, 0.025, 120),
        (-0.03, 0.008, -120),
        (0.0, 0.011, 1100),
        (0.03, 0.009, -250),
        (0.23, 0.045, 280),
    ]
    signal = sum(a * np.exp(-((phase - mu) ** 2) / (2 * s**2)) for mu, s, a in waves)
    rng = np.random.default_rng(7)
    return [int(v) for v in signal + rng.normal(0, 8, t.size)]
