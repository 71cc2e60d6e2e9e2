"""Ventricular fibrillation and flutter: stretches with no QRS, only VF waves.

A 4 s window (1-30 Hz, at least 0.1 mV peak to peak) is VF when two published
criteria agree, each a measure of how close the signal is to one sinusoid (an ECG
with QRS complexes is a pulse train with many harmonics and a flat baseline between
beats), and that sinusoid runs faster than 180/min (3 Hz):

- *VF filter leakage* (Kuo & Dillman 1978): with N the mean period estimated from
  the signal, the leakage of the filter v[i] + v[i - N] is below 0.406;
- *spectral criterion* (Barro et al. 1989): on the amplitude spectrum, zeroed below
  5 % of its peak, the normalised first moment M up to 20 times the peak frequency
  F is at most 1.55 and the share A2 of 0.7-1.4 F in 0.5 Hz-20 F at least 0.45.

Both as evaluated by Amann, Tratnig & Unterkofler 2005 ("Reliability of old and new
ventricular fibrillation detection algorithms for automated external
defibrillators", BioMed Eng OnLine 4:60), with their published thresholds, not tuned
here. The rate floor is ours: without it a floating electrode's drift (1-3 Hz,
as the simulator's lead-off scenario makes it) met both criteria in 422 of 1,200
4 s windows, and in none with it; MIT-BIH 207's flutter runs at 3.25-3.75 Hz.

On the validation sets (docs/validation.md) the criteria flag no window outside a
VF episode (MIT-BIH, CinC 2017 with its noisy records, LUDB, the noise stress
records) and the flutter episodes of MIT-BIH 207, the only VF in those sets: one
record, so sensitivity is not established. Tremor at 4-6 Hz is the known mimic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import signal as sps

WINDOW_S = 4.0
STEP_S = 2.0
BAND_HZ = (1.0, 30.0)
LEAKAGE_MAX = 0.406
SPECTRUM_FLOOR = 0.05
FUNDAMENTAL_HZ = (0.5, 9.0)
# VF and flutter run faster than 180/min (flutter 250-350/min, VF's waves faster
# and irregular); a slower "fibrillation" is drift, such as a lead off.
MIN_RATE_HZ = 3.0
EXTEND_RATE_HZ = 2.5
MOMENT_MAX = 1.55
A2_MIN = 0.45
# Below this peak-to-peak (mV) a window is flat, not fibrillating (quality.FLAT_MV).
MIN_MV = 0.1
# A window this much bridged over missing samples is not judged: a filtered
# straight-line bridge rings like a sinusoid.
MAX_MISSING = 0.01


@dataclass(frozen=True)
class Stretch:
    start: int
    stop: int


def leakage(v: np.ndarray) -> float:
    """Kuo & Dillman's VF filter leakage of one zero-mean window (0-1)."""
    steps = np.abs(np.diff(v)).sum()
    if steps == 0:
        return 1.0
    period = int(np.floor(np.pi * np.abs(v).sum() / steps + 0.5))
    if not 1 <= period < len(v):
        return 1.0
    now, before = v[period:], v[:-period]
    return float(
        np.abs(now + before).sum() / (np.abs(now).sum() + np.abs(before).sum())
    )


def spectral(v: np.ndarray, fs: float) -> tuple[float, float, float]:
    """Barro's peak frequency F (Hz), normalised first spectral moment M and
    fundamental share A2."""
    amplitude = np.abs(np.fft.rfft(v * np.hamming(len(v))))
    freq = np.fft.rfftfreq(len(v), 1 / fs)
    amplitude[amplitude < SPECTRUM_FLOOR * amplitude.max()] = 0.0
    search = (freq >= FUNDAMENTAL_HZ[0]) & (freq <= FUNDAMENTAL_HZ[1])
    if not amplitude[search].any():
        return 0.0, np.inf, 0.0
    peak = float(freq[search][np.argmax(amplitude[search])])
    top = min(20 * peak, 100.0)
    moment_band = (freq > 0) & (freq <= top)
    moment = (amplitude * freq)[moment_band].sum() / amplitude[moment_band].sum() / peak
    share_band = (freq >= FUNDAMENTAL_HZ[0]) & (freq <= top)
    near = (freq >= 0.7 * peak) & (freq <= 1.4 * peak)
    share = amplitude[near].sum() / amplitude[share_band].sum()
    return peak, float(moment), float(share)


def rate_hz(v: np.ndarray, fs: float) -> float:
    """The window's VF rate (Hz) when both criteria hold on it, else 0."""
    v = v - v.mean()
    if np.ptp(v) < MIN_MV or leakage(v) >= LEAKAGE_MAX:
        return 0.0
    peak, moment, share = spectral(v, fs)
    return peak if moment <= MOMENT_MAX and share >= A2_MIN else 0.0


@cache
def _band_pass(fs: float) -> np.ndarray:
    return sps.butter(2, BAND_HZ, btype="band", fs=fs, output="sos")


def _rates(cleaned: np.ndarray, fs: float, missing: np.ndarray | None) -> np.ndarray:
    """rate_hz of each 4 s window, 2 s apart (0 where too much was missing)."""
    width, step = int(WINDOW_S * fs), int(STEP_S * fs)
    # 1-30 Hz: what is left of baseline wander below, muscle noise above. A
    # causal filter's phase lag changes neither criterion.
    band = sps.sosfilt(_band_pass(fs), cleaned)
    starts = range(0, len(band) - width + 1, step)
    return np.array(
        [
            0.0
            if missing is not None and missing[a : a + width].mean() > MAX_MISSING
            else rate_hz(band[a : a + width], fs)
            for a in starts
        ]
    )


def stretches(
    cleaned: np.ndarray, fs: float, missing: np.ndarray | None = None
) -> list[Stretch]:
    """The VF stretches of a cleaned recording (telemetry.ecg.peaks.clean, which
    removes baseline wander), from 4 s windows 2 s apart.

    A stretch needs one window faster than 180/min; VF-shaped windows next to it
    down to 150/min (EXTEND_RATE_HZ) belong to it too, since an episode's rate
    wanders (MIT-BIH 207's flutter dips to 2.75 Hz).

    missing: mask of samples that were bridged over NaN (windows with more than
    MAX_MISSING of them are not judged)."""
    width, step = int(WINDOW_S * fs), int(STEP_S * fs)
    if len(cleaned) < width:
        return []
    rates = _rates(cleaned, fs, missing)
    found: list[Stretch] = []
    run: list[int] = []
    for index, rate in enumerate([*rates, 0.0]):
        if rate > EXTEND_RATE_HZ:
            run.append(index)
            continue
        if run and rates[run].max() > MIN_RATE_HZ:
            start, stop = run[0] * step, run[-1] * step + width
            if found and found[-1].stop >= start:  # overlapping windows
                start = found.pop().start
            found.append(Stretch(start, stop))
        run = []
    return found


def outside(peaks: np.ndarray, found: list[Stretch]) -> np.ndarray:
    """Peaks not inside a VF stretch (VF waves are not beats)."""
    keep = np.ones(len(peaks), dtype=bool)
    for s in found:
        keep &= (peaks < s.start) | (peaks >= s.stop)
    return peaks[keep]
