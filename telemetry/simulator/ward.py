"""Simulated patients: each tick, what their hub and ECG patch hand to the client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from telemetry import contract as c

from .ecg import EcgStream, Rhythm
from .physiology import Vitals, VitalsModel, baseline
from .replay import ReplayStream
from .scenarios import Scenario

ECG_FS = 250
ECG_SEGMENT_S = 20.0  # a strip per upload: long enough for a rhythm call
ECG_LEAD = "II"
HUB_BATTERY_PCT = 100  # mains-powered


@dataclass(frozen=True)
class Reading:
    code: str
    value: float | str
    unit: str
    time: datetime


@dataclass(frozen=True)
class Strip:
    lead: str
    fs_hz: int
    start: datetime
    samples_uv: list[int]


@dataclass(frozen=True)
class Emission:
    """What one device has new this tick, as its own clock stamps it."""

    role: str  # "HUB" or "ECG"
    readings: tuple[Reading, ...]
    strips: tuple[Strip, ...]
    battery_pct: int
    online: bool
    clock_offset_s: float = 0.0  # how far the device's clock is off


def hub_readings(vitals: Vitals, at: datetime) -> tuple[Reading, ...]:
    return (
        Reading(c.HEART_RATE, int(vitals.heart_rate), "/min", at),
        Reading(c.RESPIRATORY_RATE, int(vitals.respiratory_rate), "/min", at),
        Reading(c.SPO2_PULSE_OX, int(vitals.spo2), "%", at),
        Reading(c.SYSTOLIC, int(vitals.systolic), "mm[Hg]", at),
        Reading(c.DIASTOLIC, int(vitals.diastolic), "mm[Hg]", at),
        Reading(c.BODY_TEMPERATURE, float(vitals.temperature), "Cel", at),
        Reading(c.CONSCIOUSNESS, vitals.consciousness, "{ACVPU}", at),
    )


class SimulatedPatient:
    """A patient following a scenario from ``start`` (wall clock, UTC)."""

    def __init__(
        self,
        scenario: Scenario,
        start: datetime,
        seed: int,
        compression: float = 1.0,
        replay: ReplayStream | None = None,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.scenario = scenario
        self.start = start
        self.compression = compression
        self.base = baseline(rng)
        self._vitals = VitalsModel(rng)
        self._ecg = EcgStream(ECG_FS, rng)
        self._replay = replay
        self._last_s = 0.0
        self._ecg_done_s = 0.0

    @property
    def replayed(self) -> bool:
        return self._replay is not None

    def course(self, wall_s: float) -> Vitals:
        return self.scenario.course(self.base, wall_s * self.compression, wall_s)

    def tick(self, at: datetime) -> list[Emission]:
        wall = (at - self.start).total_seconds()
        dt = max(wall - self._last_s, 0.0)
        self._last_s = wall
        online = self.scenario.online(wall)
        hub_clock = at + timedelta(seconds=self.scenario.clock_offset_s)
        vitals = self._vitals.read(self.course(wall), dt)
        hub = Emission(
            "HUB",
            hub_readings(vitals, hub_clock),
            (),
            HUB_BATTERY_PCT,
            online,
            self.scenario.clock_offset_s,
        )
        battery = self.scenario.battery(wall * self.compression)
        patch = Emission("ECG", (), tuple(self._strips(wall)), battery, online)
        return [hub, patch]

    def _strips(self, wall: float) -> list[Strip]:
        strips = []
        while self._ecg_done_s + ECG_SEGMENT_S <= wall:
            begin = self._ecg_done_s
            mv = self._ecg_mv(begin)
            start = self.start + timedelta(seconds=begin)
            uv = np.rint(mv * 1000.0).astype(int).tolist()
            strips.append(Strip(ECG_LEAD, ECG_FS, start, uv))
            self._ecg_done_s += ECG_SEGMENT_S
        return strips

    def _ecg_mv(self, begin: float) -> np.ndarray:
        if self._replay is not None:
            return self._replay.segment(ECG_SEGMENT_S)
        middle = begin + ECG_SEGMENT_S / 2
        rhythm = Rhythm(self.scenario.rhythm(middle), self.course(middle).heart_rate)
        noise = self.scenario.ecg_noise(middle)
        return self._ecg.segment(begin, ECG_SEGMENT_S, rhythm, noise)
