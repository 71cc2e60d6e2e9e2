"""Scenarios: what happens to a simulated patient and their devices, and which
alerts a clinician should then see (docs/device-client.md has the table).

Two clocks drive a scenario. ``t`` is physiological time: wall time since the
start multiplied by the compression factor, so that a sepsis that takes hours
unfolds in minutes for a demo. ``wall`` is real time since the start: rhythm
episodes, electrode trouble and outages happen in real time, because the alert
engine's persistence delays (10–30 s) are real time too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from .ecg import NoiseName, RhythmName
from .physiology import Vitals, toward

HOUR_S = 3600.0


def _unchanged(base: Vitals, t: float, wall: float) -> Vitals:
    return base


def _sinus(wall: float) -> RhythmName:
    return "sinus"


def _clean(wall: float) -> NoiseName:
    return "clean"


def _full_battery(t: float) -> int:
    return 86


def _always_online(wall: float) -> bool:
    return True


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    expected: frozenset[str]  # alert kinds it must raise
    tolerated: frozenset[str] = frozenset()  # kinds it may also raise
    course: Callable[[Vitals, float, float], Vitals] = _unchanged  # (base, t, wall)
    rhythm: Callable[[float], RhythmName] = _sinus
    ecg_noise: Callable[[float], NoiseName] = _clean
    battery: Callable[[float], int] = _full_battery
    online: Callable[[float], bool] = _always_online
    clock_offset_s: float = 0.0


# --- sepsis: over four hours, NEWS2 climbs from 0 through medium to high ---

SEPSIS_HOURS = 4.0


def _sepsis(base: Vitals, t: float, wall: float) -> Vitals:
    septic = Vitals(
        heart_rate=134,
        respiratory_rate=28,
        spo2=94,
        systolic=84,
        temperature=39.5,
    )
    fraction = t / (SEPSIS_HOURS * HOUR_S)
    now = toward(base, septic, fraction)
    # New confusion comes late (NEWS2 scores it 3).
    return replace(now, consciousness="C" if fraction >= 0.9 else "A")


# --- hypoxia: saturation falls over an hour, breathing and heart speed up ---


def _hypoxia(base: Vitals, t: float, wall: float) -> Vitals:
    hypoxic = replace(base, spo2=86, respiratory_rate=23, heart_rate=110)
    return toward(base, hypoxic, t / HOUR_S)


# --- paroxysmal AF: 2 minutes of AF in every 4, ventricular rate ~105 ---

AF_PERIOD_S, AF_FROM_S, AF_TO_S = 240.0, 40.0, 160.0


def _in_af(wall: float) -> bool:
    return AF_FROM_S <= wall % AF_PERIOD_S < AF_TO_S


def _af_rhythm(wall: float) -> RhythmName:
    return "af" if _in_af(wall) else "sinus"


def _af_course(base: Vitals, t: float, wall: float) -> Vitals:
    return replace(base, heart_rate=105) if _in_af(wall) else base


# --- bradycardia with sinus pauses ---


def _brady(base: Vitals, t: float, wall: float) -> Vitals:
    return replace(base, heart_rate=44)


def _brady_rhythm(wall: float) -> RhythmName:
    return "brady_pauses"


# --- ECG patch: motion artefact, then a lead coming off, every 4 minutes ---


def _noisy(wall: float) -> NoiseName:
    phase = wall % 240.0
    if 30.0 <= phase < 100.0:
        return "motion"
    if 140.0 <= phase < 210.0:
        return "lead_off"
    return "clean"


# --- technical ---

OFFLINE_FROM_S, OFFLINE_FOR_S, OFFLINE_PERIOD_S = 60.0, 300.0, 1200.0


def _flaky_network(wall: float) -> bool:
    return (
        not OFFLINE_FROM_S <= wall % OFFLINE_PERIOD_S < OFFLINE_FROM_S + (OFFLINE_FOR_S)
    )


def _draining(t: float) -> int:
    """32 % at the start, one percent per ten minutes, never below 3 %."""
    return max(3, round(32 - t / 600.0))


CLOCK_BEHIND_S = -600.0

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("stable", "well patient, devices healthy", frozenset()),
        Scenario(
            "sepsis",
            "deterioration over 4 h: fever, rising heart and breathing rate, "
            "falling blood pressure, late confusion; NEWS2 0 → 5–6 → ≥7",
            frozenset(
                {
                    "news2",
                    "tachycardia",
                    "heart_rate_high",
                    "respiratory_rate_high",
                    "systolic_bp_low",
                    "temperature_high",
                }
            ),
            course=_sepsis,
        ),
        Scenario(
            "hypoxia",
            "SpO2 falls to ~86 % over an hour; breathing 23/min, heart 110/min",
            frozenset({"spo2_low", "news2", "tachycardia"}),
            tolerated=frozenset({"respiratory_rate_high"}),
            course=_hypoxia,
        ),
        Scenario(
            "af",
            "paroxysmal atrial fibrillation: 2 min in every 4, rate ~105",
            frozenset({"af"}),
            course=_af_course,
            rhythm=_af_rhythm,
        ),
        Scenario(
            "bradycardia",
            "sinus bradycardia ~44/min with sinus pauses of 2.7–3.4 s",
            frozenset({"bradycardia", "pause"}),
            tolerated=frozenset({"heart_rate_low"}),
            course=_brady,
            rhythm=_brady_rhythm,
        ),
        Scenario(
            "lead_off",
            "stable patient; ECG patch with motion artefact and a lead coming off",
            frozenset({"ecg_signal_poor"}),
            ecg_noise=_noisy,
        ),
        Scenario(
            "offline",
            "stable patient; home network down 5 min in every 20 (data buffered, "
            "delivered late)",
            frozenset({"device_stale"}),
            online=_flaky_network,
        ),
        Scenario(
            "low_battery",
            "stable patient; ECG patch battery draining from 32 % below 20 %",
            frozenset({"battery_low"}),
            battery=_draining,
        ),
        Scenario(
            "clock_skew",
            "stable patient; hub clock 10 min behind",
            frozenset({"clock_skew"}),
            clock_offset_s=CLOCK_BEHIND_S,
        ),
    ]
}

# The demo ward: most patients are well, a few deteriorate, a few have device trouble.
WARD_MIX = [
    "stable",
    "sepsis",
    "stable",
    "af",
    "lead_off",
    "stable",
    "bradycardia",
    "low_battery",
    "hypoxia",
    "offline",
    "clock_skew",
    "stable",
]


def assign(count: int, name: str) -> list[Scenario]:
    """Scenarios for ``count`` patients: all one scenario, or the ward mix
    (stable beyond the twelfth patient)."""
    if name != "mixed":
        return [SCENARIOS[name]] * count
    names = WARD_MIX + ["stable"] * max(0, count - len(WARD_MIX))
    return [SCENARIOS[n] for n in names[:count]]
