"""Speed of telemetry.analysis.analyze_ecg on 10 s segments, on one core.

Run from the repo root: .venv/bin/python bench/ecg_speed.py [--data DIR] [--segments N]
Real MIT-BIH excerpts, resampled to 250, 360 and 500 Hz, through analyze_ecg and,
as the ceiling, through bare nk.ecg_peaks on the same samples.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, as a Celery worker process gets
os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import neurokit2 as nk  # noqa: E402
import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402
import wfdb  # noqa: E402

from telemetry.analysis import analyze_ecg  # noqa: E402

RECORDS = ("101", "106", "119", "201", "203", "208", "223", "230")
RATES = (250, 360, 500)
SEGMENT_S = 10.0


def segments(data: Path, count: int, fs_out: int) -> list[np.ndarray]:
    """count 10 s MLII excerpts spread over RECORDS, resampled from 360 Hz."""
    per_record = max(1, count // len(RECORDS))
    out = []
    for name in RECORDS:
        record = wfdb.rdrecord(str(data / "mitdb" / name))
        signal = record.p_signal[:, record.sig_name.index("MLII")]
        size = int(SEGMENT_S * record.fs)
        starts = np.linspace(0, len(signal) - size, per_record).astype(int)
        for start in starts:
            piece = signal[start : start + size]
            out.append(scipy.signal.resample_poly(piece, fs_out, int(record.fs)))
    return out[:count]


def seconds_per_call(func: Callable[[np.ndarray], object], pieces: list) -> float:
    for piece in pieces[:3]:
        func(piece)  # warm caches and lazy imports
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for piece in pieces:
            func(piece)
        best = min(best, (time.perf_counter() - started) / len(pieces))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ecg")
    parser.add_argument("--segments", type=int, default=40)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    totals = []
    for fs in RATES:
        pieces = segments(args.data, args.segments, fs)
        ours = seconds_per_call(lambda x, fs=fs: analyze_ecg(x, fs), pieces)
        peaks = seconds_per_call(
            lambda x, fs=fs: nk.ecg_peaks(x, sampling_rate=fs), pieces
        )
        totals.append((ours, peaks))
        print(
            f"{fs} Hz, {len(pieces)} segments of {SEGMENT_S:.0f} s: analyze_ecg "
            f"{ours * 1000:.2f} ms ({1 / ours:.0f} segments/s, real time x"
            f"{SEGMENT_S / ours:.0f}); nk.ecg_peaks {peaks * 1000:.2f} ms; "
            f"ratio {ours / peaks:.1f}"
        )
    worst = max(ours for ours, _ in totals)
    ratio = max(ours / peaks for ours, peaks in totals)
    print(f"worst rate: {worst * 1000:.2f} ms per 10 s segment")
    summary = {
        "bench": "ecg_speed",
        "ms_per_10s_segment": round(worst * 1000, 2),
        "ratio_to_ecg_peaks": round(ratio, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
