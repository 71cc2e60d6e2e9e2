"""Real recordings as a device's ECG: a WFDB record, resampled to the device's
rate and played in a loop (PhysioNet data: cite it where results are shown)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def load_record(path: str | Path, fs: int, channel: int = 0) -> np.ndarray:
    """One lead of a WFDB record (``mitdb/201``: header name without extension)
    in mV at ``fs`` Hz; missing samples bridged by interpolation."""
    import wfdb  # heavy; only the replay needs it
    from scipy.signal import resample_poly

    record = wfdb.rdrecord(str(path), channels=[channel])
    signal = np.asarray(record.p_signal[:, 0], dtype=float)
    missing = ~np.isfinite(signal)
    if missing.all():
        raise ValueError(f"{path}: channel {channel} holds no samples")
    if missing.any():
        known = np.flatnonzero(~missing)
        signal[missing] = np.interp(np.flatnonzero(missing), known, signal[known])
    ratio = Fraction(fs, round(record.fs)).limit_denominator(1000)
    return resample_poly(signal, ratio.numerator, ratio.denominator)


class ReplayStream:
    """Successive segments of a recording, wrapping round at its end."""

    def __init__(self, signal_mv: np.ndarray, fs: int) -> None:
        self.signal = signal_mv
        self.fs = fs
        self._at = 0

    def segment(self, seconds: float) -> np.ndarray:
        n = round(seconds * self.fs)
        index = (self._at + np.arange(n)) % len(self.signal)
        self._at = int((self._at + n) % len(self.signal))
        return self.signal[index]
