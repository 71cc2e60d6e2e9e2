"""Fit the AF model (telemetry/ecg/af_model.json) on CinC 2017, with cross-validation.

Run from the repo root: .venv/bin/python bench/train_af.py [--data DIR] [--jobs N]
[--write]. Features come from telemetry.analysis.af_features, exactly as analyze_ecg
computes them. Prints the out-of-fold F1 (AF vs label A, every recording counted:
an unusable one is a "not AF" call), for which each outer fold's threshold is picked
by an inner cross-validation on its training part only. --write refits on all
recordings and stores the coefficients as JSON (no scikit-learn at run time).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from multiprocessing import Pool
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.io  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from telemetry.analysis import af_features  # noqa: E402
from telemetry.ecg.af import MODEL_PATH  # noqa: E402

FEATURES = (
    "cosen",
    "pnn50",
    "irregular_share",
    "rate_bpm",
    "log_p_amplitude",
    "p_consistency",
)
C = 0.1  # L2 strength: coefficients stay small and stable across folds
THRESHOLDS = np.round(np.arange(0.2, 0.71, 0.05), 2)
FOLDS, REPEATS = 5, 5


def _features(task: tuple[str, str]) -> list[float] | None:
    path, _ = task
    signal = scipy.io.loadmat(path)["val"][0] / 1000.0
    values = af_features(signal, 300.0)
    return None if values is None else [values[name] for name in FEATURES]


def load(data: Path, jobs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (NaN rows where unusable), AF truth, and the usable mask."""
    with open(data / "REFERENCE.csv") as handle:
        rows = [
            (str(data / f"{name}.mat"), label) for name, label in csv.reader(handle)
        ]
    with Pool(jobs) as pool:
        found = pool.map(_features, rows, chunksize=20)
    usable = np.array([f is not None for f in found])
    x = np.array([f if f is not None else [np.nan] * len(FEATURES) for f in found])
    return x, np.array([label == "A" for _, label in rows]), usable


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, object]:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    model = LogisticRegression(C=C, max_iter=2000).fit((x - mean) / scale, y)
    return mean, scale, model


def _proba(fitted: tuple, x: np.ndarray) -> np.ndarray:
    mean, scale, model = fitted
    return model.predict_proba((x - mean) / scale)[:, 1]


def f1(truth: np.ndarray, called: np.ndarray) -> float:
    tp = int((truth & called).sum())
    wrong = int((truth != called).sum())
    return 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0


def _oof(x, y, usable, train, test) -> np.ndarray:
    """Probabilities for test from a model fitted on train (usable rows only)."""
    out = np.zeros(len(test))
    fit_rows = train[usable[train]]
    fitted = _fit(x[fit_rows], y[fit_rows])
    keep = usable[test]
    out[keep] = _proba(fitted, x[test[keep]])
    return out


def pick_threshold(x, y, usable, seed: int) -> float:
    """The threshold with the best F1 over an inner cross-validation."""
    proba = np.zeros(len(y))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    for train, test in folds.split(x, y):
        proba[test] = _oof(x, y, usable, train, test)
    scores = [f1(y, usable & (proba >= t)) for t in THRESHOLDS]
    return float(THRESHOLDS[int(np.argmax(scores))])


def cross_validate(x, y, usable) -> list[float]:
    """Out-of-fold F1 per repeat, thresholds chosen inside each training part."""
    results = []
    for seed in range(REPEATS):
        called = np.zeros(len(y), dtype=bool)
        folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
        for train, test in folds.split(x, y):
            inner = pick_threshold(x[train], y[train], usable[train], seed + 100)
            proba = _oof(x, y, usable, train, test)
            called[test] = usable[test] & (proba >= inner)
        results.append(f1(y, called))
    return results


def write_model(x, y, usable, path: Path) -> dict:
    mean, scale, model = _fit(x[usable], y[usable])
    artefact = {
        "about": "AF vs not AF, CinC 2017 (bench/train_af.py); p = sigmoid(z.coef+b)"
        " with z = (x - mean) / scale; AF when p >= threshold",
        "features": list(FEATURES),
        "mean": [round(float(v), 6) for v in mean],
        "scale": [round(float(v), 6) for v in scale],
        "coef": [round(float(v), 6) for v in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 6),
        "threshold": pick_threshold(x, y, usable, 0),
    }
    path.write_text(json.dumps(artefact, indent=2) + "\n")
    return artefact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = ROOT.parent / "shared/data/ecg/cinc2017"
    parser.add_argument("--data", type=Path, default=default)
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2))
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    x, y, usable = load(args.data, args.jobs)
    print(f"{len(y)} recordings, {y.sum()} AF, {usable.sum()} usable")
    scores = cross_validate(x, y, usable)
    print(
        f"out-of-fold F1 ({REPEATS} x {FOLDS}-fold): mean {np.mean(scores):.3f}, "
        f"min {min(scores):.3f}, max {max(scores):.3f}"
    )
    if args.write:
        artefact = write_model(x, y, usable, MODEL_PATH)
        print(f"wrote {MODEL_PATH.relative_to(ROOT)}: {json.dumps(artefact)}")
    print(json.dumps({"bench": "train_af", "oof_f1_mean": round(np.mean(scores), 3)}))


if __name__ == "__main__":
    main()
