"""Cleaning and R-peak detection: two NeuroKit2 detectors and a search-back."""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType

import numpy as np

# A gap longer than this multiple of the local median RR is searched for a missed beat.
SEARCH_BACK_RATIO = 1.5
# A beat recovered in a gap must lie this far (s) from both neighbours.
SEARCH_BACK_MARGIN_S = 0.25
# Peak-to-peak amplitude (mV) below which a "QRS" is noise on a flat line (a tenth of
# the 0.5 mV low-voltage limit of the limb leads).
MIN_QRS_MV = 0.05
LOCAL_BEATS = 8


def _nk() -> ModuleType:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import neurokit2 as nk  # lazy: the import costs ~2 s

    return nk


def preload() -> None:
    _nk()


def clean(signal: np.ndarray, fs: float) -> np.ndarray:
    """NeuroKit2's default cleaning (0.5 Hz high-pass and mains notch)."""
    return np.asarray(_nk().ecg_clean(signal, sampling_rate=fs), dtype=float)


def _find(cleaned: np.ndarray, fs: float, method: str) -> np.ndarray:
    found = _nk().ecg_findpeaks(cleaned, sampling_rate=fs, method=method)
    return np.asarray(found["ECG_R_Peaks"], dtype=np.int64)


def _primary(cleaned: np.ndarray, fs: float) -> np.ndarray:
    # manikandan2012 (Shannon energy) rarely counts T waves, but raises on some
    # records (MIT-BIH 105 and 213); the default detector is the fallback.
    try:
        return _find(cleaned, fs, "manikandan2012")
    except (IndexError, TypeError, ValueError):
        return _find(cleaned, fs, "neurokit")


def local_median_rr(peaks: np.ndarray) -> np.ndarray:
    """Median of the RR intervals around each RR interval (samples)."""
    rr = np.diff(peaks).astype(float)
    if len(rr) <= 2 * LOCAL_BEATS:
        return np.full(len(rr), np.median(rr)) if len(rr) else rr
    padded = np.pad(rr, LOCAL_BEATS, mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * LOCAL_BEATS + 1)
    return np.median(windows, axis=1)


def _search_back(peaks: np.ndarray, backup: np.ndarray, fs: float) -> np.ndarray:
    if len(peaks) < 3:
        return np.union1d(peaks, backup)
    rr = np.diff(peaks)
    gaps = np.flatnonzero(rr > SEARCH_BACK_RATIO * local_median_rr(peaks))
    margin = SEARCH_BACK_MARGIN_S * fs
    added = [
        backup[(backup > peaks[i] + margin) & (backup < peaks[i + 1] - margin)]
        for i in gaps
    ]
    return np.union1d(peaks, np.concatenate([backup[:0], *added]))


def _drop_tiny(cleaned: np.ndarray, peaks: np.ndarray, fs: float) -> np.ndarray:
    half = max(1, int(0.06 * fs))
    lo = np.clip(peaks - half, 0, len(cleaned))
    hi = np.clip(peaks + half, 0, len(cleaned))
    spans = np.array(
        [np.ptp(cleaned[a:b]) if b > a else 0.0 for a, b in zip(lo, hi, strict=True)]
    )
    return peaks[spans >= MIN_QRS_MV]


@dataclass(frozen=True)
class Detections:
    """Final R peaks and the default detector's own peaks (for agreement checks)."""

    peaks: np.ndarray
    backup: np.ndarray


def detect_r_peaks(cleaned: np.ndarray, fs: float) -> Detections:
    """R-peak sample indices: manikandan2012, gaps refilled from the default."""
    none = np.zeros(0, dtype=np.int64)
    if np.ptp(cleaned) < MIN_QRS_MV:
        return Detections(none, none)
    backup = _find(cleaned, fs, "neurokit")
    peaks = _search_back(_primary(cleaned, fs), backup, fs)
    return Detections(_drop_tiny(cleaned, peaks.astype(np.int64), fs), backup)
