"""Signal-quality gate: which stretches of a recording can be trusted."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

WINDOW_S = 10.0
QRS_HALF_S = 0.06
# Peak-to-peak (mV) between beats below which a stretch holds no activity at all.
FLAT_MV = 0.1
USABLE_QUALITY = 0.6
# Detector agreement (bSQI) scoring 0; it scores 1 at 0.9 (noise makes the two
# detectors disagree; fibrillatory waves between clear QRS complexes do not).
AGREE_AT_ZERO = 0.6
AGREE_S = 0.15
# Robust slope between beats, as a fraction of the QRS slope, that scores 0.
NOISE_AT_ZERO = 0.25
MIN_RR_S = 0.2


@dataclass(frozen=True)
class Window:
    start: int
    stop: int
    quality: float
    flat: bool

    @property
    def usable(self) -> bool:
        return self.quality >= USABLE_QUALITY


def window_edges(n: int, fs: float) -> np.ndarray:
    """Equal windows of about WINDOW_S seconds covering all n samples."""
    count = max(1, round(n / (WINDOW_S * fs)))
    return np.linspace(0, n, count + 1).astype(np.int64)


def beat_matrix(
    signal: np.ndarray, peaks: np.ndarray, before: int, after: int
) -> tuple[np.ndarray, np.ndarray]:
    """One row per beat, signal[p - before : p + after]; beats too near an end drop."""
    inside = peaks[(peaks >= before) & (peaks + after <= len(signal))]
    index = inside[:, None] + np.arange(-before, after)[None, :]
    return signal[index], inside


def template_correlation(beats: np.ndarray) -> np.ndarray:
    """Pearson correlation of each beat with the median beat."""
    centred = beats - beats.mean(axis=1, keepdims=True)
    template = np.median(centred, axis=0)
    num = centred @ template
    den = np.linalg.norm(centred, axis=1) * np.linalg.norm(template)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _between_beats(segment: np.ndarray, peaks: np.ndarray, half: int) -> np.ndarray:
    mask = np.ones(len(segment), dtype=bool)
    for peak in peaks:
        mask[max(0, peak - 2 * half) : peak + 2 * half] = False
    return segment[mask]


def _noise_score(segment: np.ndarray, beats: np.ndarray, between: np.ndarray) -> float:
    qrs_slope = np.median(np.abs(np.diff(beats, axis=1)).max(axis=1))
    noise = 1.4826 * np.median(np.abs(np.diff(between))) if len(between) > 2 else 0.0
    return float(np.clip(1.0 - noise / max(qrs_slope, 1e-9) / NOISE_AT_ZERO, 0, 1))


def confirmed(peaks: np.ndarray, other: np.ndarray, tolerance: int) -> np.ndarray:
    """Mask of peaks with a peak of other within tolerance (both sorted)."""
    if len(peaks) == 0 or len(other) == 0:
        return np.zeros(len(peaks), dtype=bool)
    after = np.clip(np.searchsorted(other, peaks), 0, len(other) - 1)
    before = np.clip(after - 1, 0, len(other) - 1)
    nearest = np.minimum(np.abs(other[after] - peaks), np.abs(other[before] - peaks))
    return nearest <= tolerance


def agreement(peaks: np.ndarray, other: np.ndarray, tolerance: int) -> float:
    """bSQI (Li, Mark & Clifford 2008): share of beats both detectors agree on."""
    if len(peaks) == 0 or len(other) == 0:
        return float(len(peaks) == len(other))
    matched = int(confirmed(peaks, other, tolerance).sum())
    return matched / (len(peaks) + len(other) - matched)


def _agreement_score(peaks: np.ndarray, other: np.ndarray, fs: float) -> float:
    ratio = agreement(peaks, other, int(AGREE_S * fs))
    return float(np.clip((ratio - AGREE_AT_ZERO) / (1.0 - AGREE_AT_ZERO) / 0.75, 0, 1))


def window_quality(
    segment: np.ndarray, peaks: np.ndarray, other: np.ndarray, fs: float
) -> Window:
    """Quality 0-1 of one window; peaks and other are indices into the segment."""
    half = max(1, int(QRS_HALF_S * fs))
    between = _between_beats(segment, peaks, half)
    flat = len(between) == 0 or float(np.ptp(between)) < FLAT_MV
    beats, _ = beat_matrix(segment, peaks, half, half)
    if len(beats) < 2:
        return Window(0, len(segment), 1.0 if flat else 0.0, flat)
    too_fast = np.mean(np.diff(peaks) < MIN_RR_S * fs) > 0.1
    quality = (
        0.0
        if too_fast
        else min(
            _agreement_score(peaks, other, fs),
            _noise_score(segment, beats, between),
        )
    )
    return Window(0, len(segment), quality, flat)


def assess(
    cleaned: np.ndarray, peaks: np.ndarray, other: np.ndarray, fs: float
) -> list[Window]:
    """Split into ~10 s windows and score each; other: a second detector's peaks."""
    edges = window_edges(len(cleaned), fs)
    windows = []
    for start, stop in itertools.pairwise(edges):
        inside = peaks[(peaks >= start) & (peaks < stop)] - start
        second = other[(other >= start) & (other < stop)] - start
        scored = window_quality(cleaned[start:stop], inside, second, fs)
        windows.append(Window(int(start), int(stop), scored.quality, scored.flat))
    return windows
