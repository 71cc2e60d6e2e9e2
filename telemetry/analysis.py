"""One-lead ECG analysis: beats, rate, HRV, rhythm, intervals and signal quality.

Pure module (NumPy and NeuroKit2, no Django), validated in docs/validation.md.

Pipeline: NeuroKit2 cleaning; R peaks from NeuroKit2's ``manikandan2012`` detector
(Shannon energy; rarely counts T waves) with long gaps searched again with the default
detector; ~10 s windows scored for quality; rhythm from the RR intervals of the
usable windows; intervals on the median of the dominant-shape beats.

Definitions (clinical choices, see docs/validation.md for why):

- *usable*: at least half of the recording lies in windows of quality >= 0.6.
  Window quality is the lower of two scores: how far two R-peak detectors agree
  (bSQI) and how much slope lies between the beats relative to the QRS slope.
- *vf*: ventricular fibrillation or flutter in any 4 s of the recording, usable or
  not (telemetry/ecg/vf.py: Kuo & Dillman's VF filter leakage and Barro's spectral
  criterion agreeing, at their published thresholds). Not in the issue's list of
  rhythms: a lethal rhythm must not be reported as ``noise``, which it was before.
- *asystole*: no QRS for >= 4.0 s (the common monitor asystole delay) in usable
  signal, including a flat line.
- *pause*: an RR interval >= 2.0 s that is also >= 1.5 x the median RR (the usual
  telemetry pause threshold; 3.0 s is the pacing indication, not the alarm).
- *af*: a logistic model (telemetry/ecg/af.py, coefficients in af_model.json,
  trained with cross-validation by bench/train_af.py) on RR irregularity (COSEn,
  Lake & Moorman 2011; pNN50; share of irregular RR), rate, and the size and
  beat-to-beat repeat of the P wave.
- *bradycardia* / *tachycardia*: mean rate over the usable beats < 50 / > 100 bpm.
- *irregular*: more than a fifth of the RR intervals depart from the median RR by
  over 15 % (ectopy, other arrhythmia) without meeting the AF rule.
- *noise*: less than half the recording is usable.
- *sinus*: none of the above (a regular rhythm at 50-100 bpm; the module does not
  tell sinus from other regular supraventricular rhythms).
- HRV (SDNN, RMSSD in ms, pNN50 in %) only when usable and the usable windows add
  up to >= 60 s, from RR intervals inside usable stretches (never across a noisy
  one); intervals (QRS, PR, QT) only from >= 3 dominant-shape beats; else None.
- ``r_peaks`` are every beat detected, also in unusable windows but never inside a
  VF stretch (VF waves are not beats) (``quality`` and
  ``usable`` say how far to trust them); rate, HRV and rhythm use usable ones only.
- QTc: Bazett QT/sqrt(RR) (``qtc_ms``) and Fridericia QT/cbrt(RR), RR = median RR.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from telemetry.ecg import af, delineate, peaks, quality, rhythm, vf

MIN_SECONDS = 5.0
MAX_SECONDS = 31 * 60.0  # 30 min recordings plus the slack devices add
MIN_FS = 100.0
MAX_FS = 2000.0
MAX_NAN_SHARE = 0.5
HRV_MIN_S = 60.0
USABLE_SHARE = 0.5


@dataclass(frozen=True)
class EcgFeatures:
    r_peaks: np.ndarray = field(repr=False)
    heart_rate_bpm: float | None
    rr_ms: float | None
    sdnn_ms: float | None
    rmssd_ms: float | None
    pnn50: float | None
    quality: float
    usable: bool
    rhythm: str
    qrs_ms: float | None
    pr_ms: float | None
    qt_ms: float | None
    qtc_bazett_ms: float | None
    qtc_fridericia_ms: float | None

    @property
    def qtc_ms(self) -> float | None:
        return self.qtc_bazett_ms

    def to_dict(self, *, include_peaks: bool = False) -> dict[str, Any]:
        """JSON-safe: plain floats, R peaks as a list only when asked."""
        data = asdict(self)
        peaks_list = [int(p) for p in data.pop("r_peaks")]
        data["qtc_ms"] = self.qtc_ms
        if include_peaks:
            data["r_peaks"] = peaks_list
        return {k: _plain(v) for k, v in data.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return round(float(value), 3)
    return bool(value) if isinstance(value, np.bool_) else value


def _validated(samples: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Float copy with NaN and inf interpolated, and the mask of what was missing."""
    if not (math.isfinite(fs) and MIN_FS <= fs <= MAX_FS):
        raise ValueError(f"fs must be {MIN_FS:.0f}-{MAX_FS:.0f} Hz, got {fs!r}")
    signal = np.array(samples, dtype=float)
    if signal.ndim != 1:
        raise ValueError(f"expected one lead (a 1-D array), got shape {signal.shape}")
    seconds = len(signal) / fs
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError(
            f"ECG must last {MIN_SECONDS:.0f} s to {MAX_SECONDS / 60:.0f} min, "
            f"got {seconds:.1f} s"
        )
    missing = ~np.isfinite(signal)
    if missing.all():
        raise ValueError("ECG has no finite samples")
    if missing.any():
        # NeuroKit2 finds no peaks at all in a signal containing NaN.
        known = np.flatnonzero(~missing)
        signal[missing] = np.interp(np.flatnonzero(missing), known, signal[known])
    return signal, missing


def _gated(windows: list[quality.Window], missing: np.ndarray) -> list[quality.Window]:
    """Windows with more than a fifth of their samples missing cannot be trusted."""
    return [
        w
        if missing[w.start : w.stop].mean() <= 0.2
        else quality.Window(w.start, w.stop, 0.0, flat=False)
        for w in windows
    ]


def _usable_runs(windows: list[quality.Window]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for w in windows:
        if not w.usable:
            continue
        if runs and runs[-1][1] == w.start:
            runs[-1] = (runs[-1][0], w.stop)
        else:
            runs.append((w.start, w.stop))
    return runs


@dataclass(frozen=True)
class _Beats:
    """Beats of the usable runs, their RR intervals (s) and successive differences."""

    peaks: np.ndarray
    rr_s: np.ndarray
    drr_s: np.ndarray
    longest_gap_s: float
    usable_s: float


def _beats(found: np.ndarray, runs: list[tuple[int, int]], fs: float) -> _Beats:
    kept, rr, drr, gap = [found[:0]], [np.zeros(0)], [np.zeros(0)], 0.0
    for start, stop in runs:
        inside = found[(found >= start) & (found < stop)]
        run_rr = np.diff(inside) / fs
        kept.append(inside)
        rr.append(run_rr)
        drr.append(np.diff(run_rr))
        gap = max(gap, float(np.diff(np.r_[start, inside, stop]).max()) / fs)
    usable_s = sum(stop - start for start, stop in runs) / fs
    return _Beats(
        np.concatenate(kept), np.concatenate(rr), np.concatenate(drr), gap, usable_s
    )


def _hrv(beats: _Beats) -> tuple[float | None, float | None, float | None]:
    """SDNN, RMSSD (ms) and pNN50 (%) from RR intervals inside usable runs."""
    if beats.usable_s < HRV_MIN_S or len(beats.drr_s) < 2:
        return None, None, None
    sdnn = float(np.std(beats.rr_s, ddof=1)) * 1000
    rmssd = float(np.sqrt(np.mean(beats.drr_s**2))) * 1000
    pnn50 = float(np.mean(np.abs(beats.drr_s) > 0.05)) * 100
    return sdnn, rmssd, pnn50


def _qtc(qt_ms: float | None, rr_s: float | None) -> tuple[float | None, ...]:
    if qt_ms is None or not rr_s:
        return None, None
    return qt_ms / math.sqrt(rr_s), qt_ms / rr_s ** (1 / 3)


def _intervals(cleaned: np.ndarray, beats: _Beats, fs: float) -> delineate.Intervals:
    if len(beats.rr_s) < 2:
        return delineate.Intervals()
    return delineate.measure(cleaned, beats.peaks, fs, float(np.median(beats.rr_s)))


def _rhythm(cleaned: np.ndarray, beats: _Beats, fs: float) -> str:
    evidence = af.features(cleaned, beats.peaks, beats.rr_s, fs)
    return rhythm.classify(beats.rr_s, beats.longest_gap_s, af.is_af(evidence))


@dataclass(frozen=True)
class _FrontEnd:
    """Cleaned signal, detections, scored windows and the usable beats."""

    cleaned: np.ndarray
    r_peaks: np.ndarray
    windows: list[quality.Window]
    lengths: np.ndarray
    beats: _Beats
    usable: bool
    vf: list[vf.Stretch]


def _front_end(samples: np.ndarray, fs: float) -> _FrontEnd:
    signal, missing = _validated(samples, fs)
    cleaned = peaks.clean(signal, fs)
    found = peaks.detect_r_peaks(cleaned, fs)
    windows = _gated(quality.assess(cleaned, found.peaks, found.backup, fs), missing)
    fibrillation = vf.stretches(cleaned, fs, missing)
    r_peaks = vf.outside(found.peaks, fibrillation)
    beats = _beats(r_peaks, _usable_runs(windows), fs)
    lengths = np.array([w.stop - w.start for w in windows], dtype=float)
    usable_share = sum(n for n, w in zip(lengths, windows, strict=True) if w.usable)
    usable = usable_share / lengths.sum() >= USABLE_SHARE
    return _FrontEnd(cleaned, r_peaks, windows, lengths, beats, usable, fibrillation)


def preload() -> None:
    """Import NeuroKit2 and SciPy now (about 2 s) instead of at the first analysis.

    Celery workers call it at start-up (rpm/celery.py); web processes never do.
    """
    peaks.preload()


def af_features(samples: np.ndarray, fs: float) -> dict[str, float] | None:
    """The AF model's inputs for one recording (None when unusable or too short).

    For training and auditing the model (bench/train_af.py); analyze_ecg uses the
    same values.
    """
    front = _front_end(samples, fs)
    if not front.usable:
        return None
    return af.features(front.cleaned, front.beats.peaks, front.beats.rr_s, fs)


def analyze_ecg(samples: np.ndarray, fs: float) -> EcgFeatures:
    """Analyse one lead in mV sampled at fs Hz (5 s to 30 min).

    Raises ValueError on a sampling rate outside 100-2000 Hz, a length outside
    5 s-31 min, a non 1-D array or an all-NaN signal. NaN/inf gaps are bridged
    before detection, and windows more than a fifth missing count as unusable.
    """
    front = _front_end(samples, fs)
    beats, cleaned = front.beats, front.cleaned
    usable = front.usable
    intervals = _intervals(cleaned, beats, fs) if usable else delineate.Intervals()
    if front.vf:
        label = "vf"  # whatever the beat-based gate says
    elif usable:
        label = _rhythm(cleaned, beats, fs)
    else:
        label = "noise"
    return _features(
        front.r_peaks, beats, front.windows, front.lengths, usable, label, intervals
    )


def _features(
    r_peaks: np.ndarray,
    beats: _Beats,
    windows: list[quality.Window],
    lengths: np.ndarray,
    usable: bool,
    label: str,
    intervals: delineate.Intervals,
) -> EcgFeatures:
    rr_mean = float(np.mean(beats.rr_s)) if len(beats.rr_s) else None
    sdnn, rmssd, pnn50 = _hrv(beats) if usable else (None, None, None)
    rr_median = float(np.median(beats.rr_s)) if len(beats.rr_s) else None
    bazett, fridericia = _qtc(intervals.qt_ms, rr_median)
    return EcgFeatures(
        r_peaks=r_peaks.astype(np.int64),
        heart_rate_bpm=None if rr_mean is None else 60.0 / rr_mean,
        rr_ms=None if rr_mean is None else rr_mean * 1000,
        sdnn_ms=sdnn,
        rmssd_ms=rmssd,
        pnn50=pnn50,
        quality=float(np.average([w.quality for w in windows], weights=lengths)),
        usable=usable,
        rhythm=label,
        qrs_ms=intervals.qrs_ms,
        pr_ms=intervals.pr_ms,
        qt_ms=intervals.qt_ms,
        qtc_bazett_ms=bazett,
        qtc_fridericia_ms=fridericia,
    )
