"""AF evidence: RR irregularity and atrial activity, combined by a logistic model.

The model's coefficients live in ``af_model.json``, written by ``bench/train_af.py``
(5-fold cross-validation on CinC 2017; see docs/validation.md for the out-of-fold
figures and the features that were tried and left out).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from telemetry.ecg import rhythm
from telemetry.ecg.quality import beat_matrix, template_correlation

MODEL_PATH = Path(__file__).with_name("af_model.json")
MIN_RR = 6
# Stretch before each R searched for the P wave; at fast rates it stops short of
# the previous T wave.
P_FROM_S = 0.3
P_FROM_RR_SHARE = 0.45
P_TO_S = 0.06
QRS_HALF_S = 0.05
# Floors keep the logarithm and COSEn finite on degenerate input.
P_AMPLITUDE_FLOOR = 1e-3
COSEN_FLOOR = -3.0


def _cosen(rr: np.ndarray) -> float:
    value = rhythm.cosen(rr) if len(rr) >= rhythm.MIN_AF_BEATS else None
    return COSEN_FLOOR if value is None else max(COSEN_FLOOR, value)


def rr_features(rr: np.ndarray) -> dict[str, float]:
    """Irregularity of the RR intervals (s) and the mean rate."""
    diffs = np.abs(np.diff(rr))
    return {
        "cosen": _cosen(rr),
        "pnn50": float(np.mean(diffs > 0.05)),
        "irregular_share": rhythm.irregular_share(rr),
        "rate_bpm": 60.0 / float(np.mean(rr)),
    }


def _detrended(stretches: np.ndarray) -> np.ndarray:
    x = np.arange(stretches.shape[1])
    trend = np.polynomial.polynomial.polyfit(x, stretches.T, 1)
    return stretches - np.polynomial.polynomial.polyval(x, trend)


def atrial_features(
    cleaned: np.ndarray, peaks: np.ndarray, fs: float, rr_s: float
) -> dict[str, float]:
    """P wave on the median beat (relative size) and how well it repeats per beat.

    A P wave is locked to the QRS and survives the median; fibrillatory waves are
    not, so they average out and differ from beat to beat.
    """
    before = int(min(P_FROM_S, P_FROM_RR_SHARE * rr_s) * fs)
    half = int(QRS_HALF_S * fs)
    stop = before - int(P_TO_S * fs)
    beats, _ = beat_matrix(cleaned, peaks, before, half)
    if len(beats) < 3 or stop < 3:
        return {"log_p_amplitude": math.log(P_AMPLITUDE_FLOOR), "p_consistency": 0.0}
    qrs_amp = float(np.median(np.ptp(beats[:, before - half :], axis=1)))
    pre = _detrended(beats[:, :stop])
    p_amp = float(np.ptp(np.median(pre, axis=0))) / max(qrs_amp, 1e-9)
    return {
        "log_p_amplitude": math.log(max(p_amp, P_AMPLITUDE_FLOOR)),
        "p_consistency": float(np.clip(np.median(template_correlation(pre)), 0, 1)),
    }


def features(
    cleaned: np.ndarray, peaks: np.ndarray, rr_s: np.ndarray, fs: float
) -> dict[str, float] | None:
    """The model's inputs from the usable beats; None with too few RR intervals."""
    if len(rr_s) < MIN_RR:
        return None
    out = rr_features(rr_s)
    out.update(atrial_features(cleaned, peaks, fs, float(np.median(rr_s))))
    return out


@dataclass(frozen=True)
class Model:
    """Standardised logistic regression: p = 1 / (1 + exp(-(z . coef + b)))."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float

    def probability(self, values: dict[str, float]) -> float:
        x = np.array([values[name] for name in self.names])
        z = float(((x - self.mean) / self.scale) @ self.coef) + self.intercept
        return 1.0 / (1.0 + math.exp(-z))


@cache
def model() -> Model:
    data = json.loads(MODEL_PATH.read_text())
    return Model(
        names=tuple(data["features"]),
        mean=np.array(data["mean"], dtype=float),
        scale=np.array(data["scale"], dtype=float),
        coef=np.array(data["coef"], dtype=float),
        intercept=float(data["intercept"]),
        threshold=float(data["threshold"]),
    )


def is_af(values: dict[str, float] | None) -> bool:
    if values is None:
        return False
    fitted = model()
    return fitted.probability(values) >= fitted.threshold
