"""RR-interval statistics and the rhythm label."""

from __future__ import annotations

import numpy as np

PAUSE_S = 2.0
ASYSTOLE_S = 4.0
BRADY_BPM = 50.0
TACHY_BPM = 100.0
# Coefficient of sample entropy (Lake & Moorman 2011): m = 1, r = 30 ms.
COSEN_R_S = 0.03
# A beat whose RR differs from the local median by more than this is "irregular".
IRREGULAR_FRACTION = 0.15
MIN_AF_BEATS = 8


def sample_entropy(rr: np.ndarray, r: float) -> float | None:
    """SampEn with m = 1; None when no template pair matches at m + 1."""
    pairs = np.lib.stride_tricks.sliding_window_view(rr, 2)
    close1 = np.abs(rr[:-1, None] - rr[None, :-1]) <= r
    close2 = np.all(np.abs(pairs[:, None, :] - pairs[None, :, :]) <= r, axis=2)
    b = (close1.sum() - len(rr) + 1) / 2
    a = (close2.sum() - len(pairs)) / 2
    if a <= 0 or b <= 0:
        return None
    return float(-np.log(a / b))


def cosen(rr: np.ndarray) -> float | None:
    """Coefficient of sample entropy; high in AF (irregular at any rate)."""
    if len(rr) < MIN_AF_BEATS:
        return None
    entropy = sample_entropy(rr, COSEN_R_S)
    if entropy is None:
        # No repeated pair at all: as irregular as this many beats can show.
        entropy = float(np.log(len(rr) * (len(rr) - 1) / 2))
    return entropy + np.log(2 * COSEN_R_S) - np.log(float(np.mean(rr)))


def mad_ratio(rr: np.ndarray) -> float | None:
    """Median absolute successive RR difference over the median RR."""
    if len(rr) < MIN_AF_BEATS:
        return None
    return float(np.median(np.abs(np.diff(rr))) / np.median(rr))


def irregular_share(rr: np.ndarray) -> float:
    if len(rr) < 3:
        return 0.0
    return float(
        np.mean(np.abs(rr - np.median(rr)) > IRREGULAR_FRACTION * np.median(rr))
    )


IRREGULAR_SHARE = 0.2
PAUSE_RATIO = 1.5


def _pause(rr_s: np.ndarray) -> bool:
    if len(rr_s) == 0:
        return False
    return bool(np.any((rr_s >= PAUSE_S) & (rr_s >= PAUSE_RATIO * np.median(rr_s))))


def classify(rr_s: np.ndarray, longest_gap_s: float, af_called: bool) -> str:
    """Rhythm label of usable beats, most urgent finding first.

    af_called: the AF model's verdict (telemetry.ecg.af) on the same beats.
    """
    if longest_gap_s >= ASYSTOLE_S:
        return "asystole"
    if _pause(rr_s):
        return "pause"
    if len(rr_s) < 2:
        return "noise"
    if af_called:
        return "af"
    rate = 60.0 / float(np.mean(rr_s))
    if rate > TACHY_BPM:
        return "tachycardia"
    if rate < BRADY_BPM:
        return "bradycardia"
    return "irregular" if irregular_share(rr_s) > IRREGULAR_SHARE else "sinus"
