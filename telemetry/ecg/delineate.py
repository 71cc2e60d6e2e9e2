"""Intervals measured on the median beat: cheap, and robust to one odd beat."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from telemetry.ecg.quality import beat_matrix, template_correlation

BEFORE_S = 0.35
AFTER_MAX_S = 0.7
MIN_BEATS = 3
# Dominant-morphology beats only: PVCs and aberrant beats would blur the median.
SAME_SHAPE = 0.9
# QRS edges: where the slope stays below this share of the steepest QRS slope.
QRS_SLOPE_SHARE = 0.05
QUIET_S = 0.008
QRS_SEARCH_S = 0.15
# ... and the QRS has not ended while the signal is still this share of the QRS
# amplitude away from the level before it: the flat top of a wide complex (LUDB
# 13, a 162 ms QRS) is quiet too. 0.3-0.5 all gave the same LUDB figures.
QRS_END_LEVEL_SHARE = 0.5
# A P wave must reach this share of the QRS amplitude, and this many mV.
P_SHARE = 0.05
P_MIN_MV = 0.03
# T peak within min(0.45 s, half the RR) of the R peak; T end before 0.75 RR.
T_PEAK_MAX_S = 0.45
T_PEAK_RR_SHARE = 0.5
T_END_RR_SHARE = 0.75
SMOOTH_S = 0.02
# The trapezium's far corner: this long (s) after the T wave's steepest descent.
TRAPEZIUM_S = 0.1


@dataclass(frozen=True)
class Intervals:
    qrs_ms: float | None = None
    pr_ms: float | None = None
    qt_ms: float | None = None
    p_wave: bool = False


def median_beat(cleaned: np.ndarray, peaks: np.ndarray, fs: float, rr_s: float):
    """Median of the dominant-shape beats, with the R peak at index ``before``."""
    before = int(BEFORE_S * fs)
    after = int(min(AFTER_MAX_S, 0.9 * rr_s) * fs)
    beats, _ = beat_matrix(cleaned, peaks, before, after)
    if len(beats) < MIN_BEATS:
        return None, before
    half = int(0.06 * fs)
    qrs = beats[:, before - half : before + half]
    beats = beats[template_correlation(qrs) >= SAME_SHAPE]
    if len(beats) < MIN_BEATS:
        return None, before
    return np.median(beats, axis=0), before


def _quiet_from(slope: np.ndarray, start: int, step: int, thr: float, run: int) -> int:
    """First index walking from start by step where slope stays < thr for run."""
    index, quiet = start, 0
    while 0 <= index < len(slope):
        quiet = quiet + 1 if slope[index] < thr else 0
        if quiet >= run:
            return index - step * (run - 1)
        index += step
    return -1


def qrs_edges(beat: np.ndarray, r: int, fs: float) -> tuple[int, int] | None:
    slope = np.abs(np.gradient(beat))
    reach = int(QRS_SEARCH_S * fs)
    lo, hi = max(0, r - reach), min(len(beat), r + reach)
    thr = QRS_SLOPE_SHARE * slope[lo:hi].max()
    run = max(2, int(QUIET_S * fs))
    onset = _quiet_from(slope[:hi], r, -1, thr, run)
    if onset < lo:
        return None
    level = _baseline(beat, onset, fs)
    far = QRS_END_LEVEL_SHARE * np.ptp(beat[lo:hi])
    offset = _quiet_from(slope, r, 1, thr, run)
    while 0 <= offset <= hi and abs(beat[offset] - level) > far:
        offset = _quiet_from(slope, offset + run, 1, thr, run)
    if offset < 0 or offset > hi:
        return None
    return onset, offset


def _baseline(beat: np.ndarray, onset: int, fs: float) -> float:
    span = beat[max(0, onset - int(0.02 * fs)) : onset + 1]
    return float(np.median(span))


def _smooth(beat: np.ndarray, fs: float) -> np.ndarray:
    width = max(1, int(SMOOTH_S * fs))
    return np.convolve(beat, np.ones(width) / width, mode="same")


def t_end(
    beat: np.ndarray, r: int, offset: int, base: float, fs: float, rr_s: float
) -> int | None:
    """T-wave end by the trapezium area (Vazquez-Seisdedos et al. 2011).

    From the steepest descent after the T peak (xm), the end is the point xi that
    maximises |w(xm) - w(xi)| * (2 xr - xi - xm), with xr a point TRAPEZIUM_S past
    xm: the corner where the T wave flattens. It needs no baseline level, unlike the
    tangent, which ended T 12 ms early on LUDB.
    """
    start = offset + int(0.06 * fs)
    stop = min(len(beat), r + int(min(T_PEAK_MAX_S, T_PEAK_RR_SHARE * rr_s) * fs))
    limit = min(len(beat), r + int(T_END_RR_SHARE * rr_s * fs))
    if stop - start < int(0.05 * fs):
        return None
    wave = _smooth(beat, fs)
    peak = start + int(np.argmax(np.abs(wave[start:stop] - base)))
    towards_base = -np.sign(wave[peak] - base) * np.gradient(wave)
    steep = peak + int(np.argmax(towards_base[peak:limit]))
    reference = min(limit - 1, steep + int(TRAPEZIUM_S * fs))
    if towards_base[steep] <= 0 or reference <= steep + 2:
        return None
    xi = np.arange(steep, reference + 1)
    area = np.abs(wave[steep] - wave[xi]) * (2 * reference - xi - steep)
    return int(xi[np.argmax(area)])


def p_onset(beat: np.ndarray, onset: int, base: float, fs: float) -> int | None:
    lo, hi = max(0, onset - int(0.25 * fs)), onset - int(0.04 * fs)
    if hi - lo < 3:
        return None
    wave = beat[lo:hi] - base
    peak = lo + int(np.argmax(np.abs(wave)))
    amp = abs(beat[peak] - base)
    if amp < max(P_MIN_MV, P_SHARE * np.ptp(beat[onset : onset + int(0.1 * fs)])):
        return None
    below = np.flatnonzero(np.abs(beat[lo:peak] - base) < 0.1 * amp)
    return lo + int(below[-1]) if len(below) else None


def measure(
    cleaned: np.ndarray, peaks: np.ndarray, fs: float, rr_s: float
) -> Intervals:
    beat, r = median_beat(cleaned, peaks, fs, rr_s)
    if beat is None:
        return Intervals()
    edges = qrs_edges(beat, r, fs)
    if edges is None:
        return Intervals()
    onset, offset = edges
    base = _baseline(beat, onset, fs)
    end = t_end(beat, r, offset, base, fs, rr_s)
    p_start = p_onset(beat, onset, base, fs)
    ms = 1000.0 / fs
    return Intervals(
        qrs_ms=(offset - onset) * ms,
        pr_ms=None if p_start is None else (onset - p_start) * ms,
        qt_ms=None if end is None else (end - onset) * ms,
        p_wave=p_start is not None,
    )
