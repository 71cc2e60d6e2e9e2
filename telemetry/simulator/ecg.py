"""Synthetic one-lead ECG: beats placed on an RR series, P waves or fibrillatory
waves, and the noise a wearable patch records.

Pure module (NumPy only). Each beat is a sum of Gaussian waves P, Q, R, S and T
(the morphology of McSharry et al.'s ECGSYN, 2003, laid out in time around the R
peak), with QT shortening at fast rates (Bazett). ECGSYN itself cannot make atrial
fibrillation, so AF is built here from what defines it: an irregularly irregular
ventricular response, no P waves, and fibrillatory f waves (4–8 Hz) on the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

RhythmName = Literal["sinus", "af", "brady_pauses"]
NoiseName = Literal["clean", "motion", "lead_off"]


@dataclass(frozen=True)
class Wave:
    offset_s: float  # centre relative to the R peak
    width_s: float
    amplitude_mv: float
    rate_scaled: bool = False  # T wave: offset scales with sqrt(RR) (Bazett)


# QT follows the preceding cycle, within the range where Bazett's rule holds.
QT_RR_RANGE_S = (0.3, 1.5)


P_WAVE = Wave(-0.17, 0.022, 0.14)
QRS_T = (
    Wave(-0.028, 0.010, -0.10),
    Wave(0.0, 0.011, 1.10),
    Wave(0.030, 0.011, -0.22),
    Wave(0.30, 0.050, 0.28, rate_scaled=True),
)
BEAT_SPAN_S = (-0.35, 0.75)


@dataclass(frozen=True)
class Rhythm:
    """What the heart does now: the rhythm and the mean ventricular rate."""

    name: RhythmName
    rate_bpm: float


def next_rr(rhythm: Rhythm, t_s: float, rng: np.random.Generator) -> float:
    """The next RR interval (s) of ``rhythm`` at time ``t_s``."""
    mean = 60.0 / rhythm.rate_bpm
    if rhythm.name == "af":
        # Irregularly irregular: independent intervals, coefficient of variation
        # ~0.25, bounded by the AV node's refractory period.
        return float(np.clip(rng.normal(mean, 0.25 * mean), 0.33, 1.6))
    if rhythm.name == "brady_pauses" and rng.random() < 0.02:
        return float(rng.uniform(2.7, 3.4))  # sinus arrest
    # Sinus: respiratory sinus arrhythmia (±3 % at ~0.25 Hz) and a little jitter.
    rsa = 1.0 + 0.03 * np.sin(2 * np.pi * 0.25 * t_s)
    return float(mean * rsa * (1.0 + rng.normal(0.0, 0.01)))


def beat(t_rel: np.ndarray, rr_s: float, p_wave: bool) -> np.ndarray:
    """One beat (mV) at times relative to its R peak; rr_s: the preceding RR."""
    out = np.zeros_like(t_rel)
    rr_s = float(np.clip(rr_s, *QT_RR_RANGE_S))
    waves = (P_WAVE, *QRS_T) if p_wave else QRS_T
    for wave in waves:
        centre = wave.offset_s * (np.sqrt(rr_s) if wave.rate_scaled else 1.0)
        out += wave.amplitude_mv * np.exp(-0.5 * ((t_rel - centre) / wave.width_s) ** 2)
    return out


def render(
    r_times: np.ndarray,
    rr: np.ndarray,
    start_s: float,
    n: int,
    fs: int,
    p_waves: np.ndarray,
) -> np.ndarray:
    """The beats at ``r_times`` (s) drawn on n samples starting at ``start_s``."""
    t = start_s + np.arange(n) / fs
    signal = np.zeros(n)
    for r, interval, has_p in zip(r_times, rr, p_waves, strict=True):
        lo = max(0, int(np.floor((r + BEAT_SPAN_S[0] - start_s) * fs)))
        hi = min(n, int(np.ceil((r + BEAT_SPAN_S[1] - start_s) * fs)))
        if lo < hi:
            signal[lo:hi] += beat(t[lo:hi] - r, interval, bool(has_p))
    return signal


def fibrillatory_waves(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """f waves: ~6 Hz, wandering in frequency and amplitude (0.03–0.08 mV)."""
    freq = 6.0 + 0.8 * np.sin(2 * np.pi * 0.1 * t + rng.uniform(0, 6.3))
    phase = 2 * np.pi * np.cumsum(freq) * (t[1] - t[0]) if len(t) > 1 else freq
    amplitude = 0.055 + 0.025 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6.3))
    return amplitude * np.sin(phase)


def band_noise(
    n: int, fs: int, low_hz: float, high_hz: float, rng: np.random.Generator
) -> np.ndarray:
    """Gaussian noise limited to low–high Hz, unit standard deviation."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return noise / (noise.std() or 1.0)


def recording_noise(
    kind: NoiseName, t: np.ndarray, fs: int, rng: np.random.Generator
) -> np.ndarray:
    """What the electrodes add: always a little wander, hum and thermal noise;
    motion artefact (electrode movement and muscle) or a lead off on demand."""
    n = len(t)
    noise = 0.08 * np.sin(2 * np.pi * 0.2 * t + rng.uniform(0, 6.3))
    noise += 0.006 * np.sin(2 * np.pi * 50.0 * t) + rng.normal(0.0, 0.008, n)
    if kind == "motion":
        noise += 0.8 * band_noise(n, fs, 0.5, 8.0, rng)
        noise += 0.25 * band_noise(n, fs, 20.0, 100.0, rng)
    elif kind == "lead_off":
        # A floating electrode: the input drifts over millivolts and picks up
        # mains hum; the heart's signal is barely there (scaled down by the caller).
        noise += 1.5 * band_noise(n, fs, 0.05, 3.0, rng)
        noise += 0.9 * np.sin(2 * np.pi * 50.0 * t) + 0.3 * band_noise(
            n, fs, 1.0, 120.0, rng
        )
    return noise


class EcgStream:
    """A continuous ECG: successive segments join without a seam, because the beat
    series (and the beats straddling a segment's edge) carry over."""

    def __init__(self, fs: int, rng: np.random.Generator) -> None:
        self.fs = fs
        self.rng = rng
        self._r: list[float] = []  # R peaks (s) not yet fully drawn
        self._rr: list[float] = []
        self._p: list[bool] = []
        self._next_r = float(rng.uniform(0.2, 0.8))
        self._last_rr = 0.8

    def segment(
        self, start_s: float, seconds: float, rhythm: Rhythm, noise: NoiseName
    ) -> np.ndarray:
        """Samples (mV) from ``start_s`` for ``seconds`` (times on one timeline)."""
        end_s = start_s + seconds
        self._schedule(end_s + BEAT_SPAN_S[1] - BEAT_SPAN_S[0], rhythm)
        n = round(seconds * self.fs)
        heart = render(
            np.array(self._r), np.array(self._rr), start_s, n, self.fs, self._p
        )
        t = start_s + np.arange(n) / self.fs
        if rhythm.name == "af":
            heart += fibrillatory_waves(t, self.rng)
        if noise == "lead_off":
            heart *= 0.05
        self._forget(end_s)
        return heart + recording_noise(noise, t, self.fs, self.rng)

    def _schedule(self, until_s: float, rhythm: Rhythm) -> None:
        while self._next_r < until_s:
            self._r.append(self._next_r)
            self._rr.append(self._last_rr)
            self._p.append(rhythm.name != "af")
            self._last_rr = next_rr(rhythm, self._next_r, self.rng)
            self._next_r += self._last_rr

    def _forget(self, end_s: float) -> None:
        keep = [i for i, r in enumerate(self._r) if r + BEAT_SPAN_S[1] > end_s]
        self._r = [self._r[i] for i in keep]
        self._rr = [self._rr[i] for i in keep]
        self._p = [self._p[i] for i in keep]
