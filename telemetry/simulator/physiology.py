"""Vital signs with physiological noise: a slow drift around the patient's course
(an Ornstein–Uhlenbeck process per sign) plus the measurement noise and the
resolution of the device that reads it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Vitals:
    heart_rate: float
    respiratory_rate: float
    spo2: float
    systolic: float
    temperature: float
    consciousness: str = "A"

    @property
    def diastolic(self) -> float:
        return round(self.systolic * 0.62)


def baseline(rng: np.random.Generator) -> Vitals:
    """A well adult at rest: every sign inside NEWS2's zero-point bands, with room
    for the noise."""
    return Vitals(
        heart_rate=rng.uniform(62, 80),
        respiratory_rate=rng.uniform(14, 16.5),
        spo2=rng.uniform(97, 98.5),
        systolic=rng.uniform(122, 138),
        temperature=rng.uniform(36.6, 37.0),
    )


@dataclass(frozen=True)
class Spread:
    drift_sd: float  # of the slow wander around the course
    measure_sd: float  # of one reading
    low: float
    high: float
    decimals: int = 0


SPREADS = {
    "heart_rate": Spread(2.0, 1.0, 25, 220),
    "respiratory_rate": Spread(0.8, 0.5, 4, 60),
    "spo2": Spread(0.5, 0.4, 60, 100),
    "systolic": Spread(3.0, 2.0, 50, 240),
    "temperature": Spread(0.05, 0.05, 30, 43, 1),
}
DRIFT_TAU_S = 180.0


class VitalsModel:
    """Draws successive readings around a course; stateful (the drift)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._drift = dict.fromkeys(SPREADS, 0.0)

    def read(self, course: Vitals, dt_s: float) -> Vitals:
        keep = math.exp(-dt_s / DRIFT_TAU_S)
        values = {}
        for name, spread in SPREADS.items():
            shock = spread.drift_sd * math.sqrt(1 - keep**2)
            self._drift[name] = keep * self._drift[name] + self.rng.normal(0, shock)
            value = getattr(course, name) + self._drift[name]
            value += self.rng.normal(0, spread.measure_sd)
            value = min(max(value, spread.low), spread.high)
            values[name] = round(value, spread.decimals)
        return replace(course, **values)


def smoothstep(x: float) -> float:
    """0 → 1 with gentle start and end: how a deterioration takes hold."""
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def toward(start: Vitals, end: Vitals, fraction: float) -> Vitals:
    f = smoothstep(fraction)
    return replace(
        start,
        **{
            name: getattr(start, name) + f * (getattr(end, name) - getattr(start, name))
            for name in SPREADS
        },
    )
