"""Validate telemetry.analysis.analyze_ecg on the PhysioNet sets in shared/data/ecg.

Run from the repo root: .venv/bin/python bench/ecg_accuracy.py [--data DIR] [--jobs N]
Prints per record and per set, and ends with one JSON line (see docs/validation.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.io  # noqa: E402
import wfdb  # noqa: E402

from telemetry.analysis import analyze_ecg  # noqa: E402
from telemetry.ecg import vf  # noqa: E402

BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
TOLERANCE_S = 0.15
AF_WINDOW_S = 30.0
NOISE_WINDOW_S = 10.0
ARRHYTHMIAS = {
    "vf",
    "af",
    "bradycardia",
    "tachycardia",
    "irregular",
    "pause",
    "asystole",
}
VF_NOTES = ("(VFL", "(VF")


def match(reference: np.ndarray, detected: np.ndarray, tolerance: int) -> int:
    """One-to-one matches within tolerance, both lists sorted (greedy in time)."""
    i = j = hits = 0
    while i < len(reference) and j < len(detected):
        delta = detected[j] - reference[i]
        if abs(delta) <= tolerance:
            hits, i, j = hits + 1, i + 1, j + 1
        elif delta < 0:
            j += 1
        else:
            i += 1
    return hits


def _baseline_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    import neurokit2 as nk

    _, info = nk.ecg_peaks(nk.ecg_clean(signal, sampling_rate=fs), sampling_rate=fs)
    return np.asarray(info["ECG_R_Peaks"])


def _rhythm_spans(
    ann: wfdb.Annotation, end: int, notes: tuple[str, ...] = ("(AFIB",)
) -> list[tuple[int, int]]:
    """Sample spans of the given rhythm annotations (aux_note "(AFIB", ...)."""
    spans, start = [], None
    for sample, note in zip(ann.sample, ann.aux_note, strict=True):
        if not note.startswith("("):
            continue
        if start is not None:
            spans.append((start, sample))
            start = None
        if note.rstrip("\x00") in notes:
            start = sample
    if start is not None:
        spans.append((start, end))
    return spans


def _af_windows(signal: np.ndarray, fs: float, spans: list) -> Counter:
    """Each 30 s window: reference AF if over half of it lies in (AFIB."""
    size, counts = int(AF_WINDOW_S * fs), Counter()
    for start in range(0, len(signal) - size + 1, size):
        covered = sum(max(0, min(b, start + size) - max(a, start)) for a, b in spans)
        truth = covered > size / 2
        called = analyze_ecg(signal[start : start + size], fs).rhythm == "af"
        counts[("tp" if truth else "fp") if called else ("fn" if truth else "tn")] += 1
    return counts


def mitdb_record(task: tuple[str, str]) -> dict:
    folder, name = task
    record = wfdb.rdrecord(f"{folder}/{name}")
    ann = wfdb.rdann(f"{folder}/{name}", "atr")
    lead = record.sig_name.index("MLII") if "MLII" in record.sig_name else 0
    signal, fs = record.p_signal[:, lead], float(record.fs)
    beats = np.sort(ann.sample[np.isin(ann.symbol, list(BEAT_SYMBOLS))])
    tol = int(TOLERANCE_S * fs)
    started = time.perf_counter()
    ours = analyze_ecg(signal, fs).r_peaks
    seconds = time.perf_counter() - started
    base = _baseline_peaks(signal, fs)
    return {
        "record": name,
        "beats": len(beats),
        "ours": (match(beats, np.sort(ours), tol), len(ours)),
        "base": (match(beats, np.sort(base), tol), len(base)),
        "seconds": seconds,
        "af": _af_windows(signal, fs, _rhythm_spans(ann, len(signal))),
        "vf": _vf_check(signal, fs, _rhythm_spans(ann, len(signal), VF_NOTES)),
    }


def _vf_check(signal: np.ndarray, fs: float, truth: list) -> dict:
    """VF stretches found against the (VFL / (VF episodes: hits and false seconds."""
    found = vf.stretches(signal, fs)
    overlaps = [
        sum(max(0, min(b, s.stop) - max(a, s.start)) for a, b in truth) for s in found
    ]
    return {
        "episodes": len(truth),
        "detected": sum(
            any(s.start < b and a < s.stop for s in found) for a, b in truth
        ),
        "false_s": sum(
            (s.stop - s.start) - o for s, o in zip(found, overlaps, strict=True)
        )
        / fs,
    }


def noise_vf(task: tuple[str, str]) -> float:
    """Seconds called VF in a noise-only record (nstdb ma, bw; both channels)."""
    folder, name = task
    record = wfdb.rdrecord(f"{folder}/{name}")
    fs = float(record.fs)
    return sum(
        (s.stop - s.start) / fs
        for lead in range(record.p_signal.shape[1])
        for s in vf.stretches(record.p_signal[:, lead], fs)
    )


def cinc_chunk(task: tuple[str, list[tuple[str, str]]]) -> list[tuple[str, str]]:
    folder, rows = task
    out = []
    for name, label in rows:
        mat = scipy.io.loadmat(f"{folder}/{name}.mat")["val"][0] / 1000.0
        out.append((label, analyze_ecg(mat, 300.0).rhythm))
    return out


def _ludb_reference(ann: wfdb.Annotation, fs: float) -> tuple[float | None, ...]:
    sym, smp = ann.symbol, ann.sample
    qrs, qt = [], []
    for i in range(1, len(sym) - 1):
        if sym[i] != "N" or sym[i - 1] != "(" or sym[i + 1] != ")":
            continue
        qrs.append(smp[i + 1] - smp[i - 1])
        for j in range(i + 2, min(i + 8, len(sym) - 1)):
            if sym[j] == "N":
                break
            if sym[j] == "t" and sym[j + 1] == ")":
                qt.append(smp[j + 1] - smp[i - 1])
                break
    ms = 1000.0 / fs
    return (
        float(np.median(qrs)) * ms if qrs else None,
        float(np.median(qt)) * ms if qt else None,
    )


def ludb_record(task: tuple[str, str]) -> dict:
    folder, name = task
    record = wfdb.rdrecord(f"{folder}/{name}")
    fs = float(record.fs)
    ref_qrs, ref_qt = _ludb_reference(wfdb.rdann(f"{folder}/{name}", "ii"), fs)
    got = analyze_ecg(record.p_signal[:, record.sig_name.index("ii")], fs)
    return {"record": name, "qrs": (got.qrs_ms, ref_qrs), "qt": (got.qt_ms, ref_qt)}


def nstdb_windows(task: tuple[str, str]) -> Counter:
    """118e00: 0 dB noise in 2-min stretches from minute 5, alternating with clean."""
    folder, name = task
    record = wfdb.rdrecord(f"{folder}/{name}")
    signal, fs = record.p_signal[:, 0], float(record.fs)
    size, counts = int(NOISE_WINDOW_S * fs), Counter()
    for start in range(0, len(signal) - size + 1, size):
        minute = (start + size / 2) / fs / 60
        noisy = minute >= 5 and int((minute - 5) // 2) % 2 == 0
        got = analyze_ecg(signal[start : start + size], fs)
        counts[("noisy" if noisy else "clean", got.rhythm)] += 1
    return counts


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else float("nan")


def report_mitdb(results: list[dict]) -> tuple[float, float]:
    print("\nMIT-BIH (MLII, whole records, +/-150 ms): ours Se/PPV | default Se/PPV")
    tot = Counter()
    for r in sorted(results, key=lambda r: r["record"]):
        (hit, n), (bhit, bn) = r["ours"], r["base"]
        tot.update(beats=r["beats"], hit=hit, n=n, bhit=bhit, bn=bn)
        print(
            f"  {r['record']}  beats {r['beats']:5d}  FN {r['beats'] - hit:4d} "
            f"FP {n - hit:4d}  Se {_pct(hit, r['beats']):6.2f} PPV {_pct(hit, n):6.2f}"
            f" | Se {_pct(bhit, r['beats']):6.2f} PPV {_pct(bhit, bn):6.2f}"
            f"  ({r['seconds']:.2f} s)"
        )
    se, ppv = _pct(tot["hit"], tot["beats"]), _pct(tot["hit"], tot["n"])
    bse, bppv = _pct(tot["bhit"], tot["beats"]), _pct(tot["bhit"], tot["bn"])
    errors = tot["beats"] - tot["hit"] + tot["n"] - tot["hit"]
    base_errors = tot["beats"] - tot["bhit"] + tot["bn"] - tot["bhit"]
    print(
        f"  overall ours Se {se:.3f} PPV {ppv:.3f}; default Se {bse:.3f} PPV {bppv:.3f}"
    )
    print(
        f"  ratio ours/default: Se {se / bse:.4f}, PPV {ppv / bppv:.4f}, "
        f"errors (FN+FP) {errors}/{base_errors} = {errors / base_errors:.2f}"
    )
    return se, ppv


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")


def report_af(mitdb: list[dict], cinc: list[tuple[str, str]]) -> float:
    pairs = Counter((label, rhythm) for label, rhythm in cinc)
    tp = sum(n for (lab, rh), n in pairs.items() if lab == "A" and rh == "af")
    fp = sum(n for (lab, rh), n in pairs.items() if lab != "A" and rh == "af")
    fn = sum(n for (lab, rh), n in pairs.items() if lab == "A" and rh != "af")
    f1 = _f1(tp, fp, fn)
    print(
        f"\nCinC 2017 ({len(cinc)} recordings): af vs label A: TP {tp} FP {fp} FN {fn}"
    )
    print(f"  Se {_pct(tp, tp + fn):.1f} %  PPV {_pct(tp, tp + fp):.1f} %  F1 {f1:.3f}")
    for label in "NAO~":
        row = {rh: n for (lab, rh), n in sorted(pairs.items()) if lab == label}
        print(f"  label {label}: {row}")
    af = sum((r["af"] for r in mitdb), Counter())
    print(
        f"\nMIT-BIH AF, {AF_WINDOW_S:.0f} s windows (truth: > half in (AFIB): "
        f"TP {af['tp']} FP {af['fp']} FN {af['fn']} TN {af['tn']}  "
        f"Se {_pct(af['tp'], af['tp'] + af['fn']):.1f} % "
        f"PPV {_pct(af['tp'], af['tp'] + af['fp']):.1f} % "
        f"F1 {_f1(af['tp'], af['fp'], af['fn']):.3f}"
    )
    for r in sorted(mitdb, key=lambda r: r["record"]):
        if r["af"]["tp"] + r["af"]["fp"] + r["af"]["fn"]:
            print(f"  {r['record']}: {dict(sorted(r['af'].items()))}")
    return f1


def report_ludb(results: list[dict]) -> tuple[float, float]:
    print(f"\nLUDB lead II ({len(results)} records), median over annotated beats:")
    maes = []
    for key, unit in (("qrs", "QRS"), ("qt", "QT")):
        pairs = [r[key] for r in results if r[key][1] is not None]
        got = [(a - b) for a, b in pairs if a is not None]
        errors = np.abs(got)
        maes.append(float(errors.mean()))
        print(
            f"  {unit}: measured {len(got)}/{len(pairs)} "
            f"({_pct(len(got), len(pairs)):.0f} %), MAE {errors.mean():.1f} ms, "
            f"median AE {np.median(errors):.1f} ms, bias {np.mean(got):+.1f} ms, "
            f"within 10/20/40 ms: {_pct((errors <= 10).sum(), len(got)):.0f}/"
            f"{_pct((errors <= 20).sum(), len(got)):.0f}/"
            f"{_pct((errors <= 40).sum(), len(got)):.0f} %"
        )
    return maes[0], maes[1]


def report_nstdb(counts: Counter) -> None:
    print(f"\nnstdb 118e00 (0 dB), {NOISE_WINDOW_S:.0f} s windows:")
    for part in ("noisy", "clean"):
        row = {v: n for (p, v), n in sorted(counts.items()) if p == part}
        called = sum(n for v, n in row.items() if v in ARRHYTHMIAS)
        print(
            f"  {part} ({sum(row.values())} windows): noise/unusable "
            f"{row.get('noise', 0)}, an arrhythmia {called}, sinus "
            f"{row.get('sinus', 0)}; {row}"
        )


def report_vf(mitdb: list[dict], noise: list[float]) -> None:
    episodes = sum(r["vf"]["episodes"] for r in mitdb)
    detected = sum(r["vf"]["detected"] for r in mitdb)
    false_s = sum(r["vf"]["false_s"] for r in mitdb)
    print(
        f"\nVF/VFL (telemetry.ecg.vf): MIT-BIH episodes detected {detected}/{episodes};"
        f" called VF outside an episode: {false_s:.0f} s of MIT-BIH, "
        f"{sum(noise):.0f} s of nstdb ma + bw noise (2 x 2 x 30 min)"
    )
    for r in mitdb:
        if r["vf"]["episodes"] or r["vf"]["false_s"]:
            print(f"  {r['record']}: {r['vf']}")


def _tasks(data: Path) -> dict[str, list]:
    mitdb = sorted(p.stem for p in (data / "mitdb").glob("*.hea"))
    with open(data / "cinc2017" / "REFERENCE.csv") as handle:
        rows = [(name, label) for name, label in csv.reader(handle)]
    chunks = [rows[i : i + 50] for i in range(0, len(rows), 50)]
    ludb = sorted((p.stem for p in (data / "ludb").glob("*.hea")), key=int)
    return {
        "mitdb": [(str(data / "mitdb"), n) for n in mitdb],
        "cinc": [(str(data / "cinc2017"), c) for c in chunks],
        "ludb": [(str(data / "ludb"), n) for n in ludb],
        "nstdb": [(str(data / "nstdb"), "118e00")],
        "noise": [(str(data / "nstdb"), n) for n in ("ma", "bw")],
    }


WORKERS = {
    "mitdb": mitdb_record,
    "cinc": cinc_chunk,
    "ludb": ludb_record,
    "nstdb": nstdb_windows,
    "noise": noise_vf,
}


def _run(tasks: dict[str, list], jobs: int) -> dict[str, list]:
    jobs_list = [(kind, t) for kind, ts in tasks.items() for t in ts]
    with Pool(jobs) as pool:
        outputs = pool.map(_dispatch, jobs_list, chunksize=1)
    results: dict[str, list] = {kind: [] for kind in tasks}
    for (kind, _), out in zip(jobs_list, outputs, strict=True):
        results[kind].append(out)
    return results


def _dispatch(job: tuple[str, tuple]) -> object:
    kind, task = job
    return WORKERS[kind](task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ecg")
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2))
    args = parser.parse_args()
    started = time.perf_counter()
    results = _run(_tasks(args.data), args.jobs)
    se, ppv = report_mitdb(results["mitdb"])
    cinc = [pair for chunk in results["cinc"] for pair in chunk]
    f1 = report_af(results["mitdb"], cinc)
    qrs, qt = report_ludb(results["ludb"])
    report_nstdb(sum(results["nstdb"], Counter()))
    report_vf(results["mitdb"], results["noise"])
    print(f"\n({time.perf_counter() - started:.0f} s with {args.jobs} processes)")
    summary = {
        "bench": "ecg_accuracy",
        "rpeak_se": round(se, 3),
        "rpeak_ppv": round(ppv, 3),
        "af_f1": round(f1, 3),
        "qrs_mae_ms": round(qrs, 1),
        "qt_mae_ms": round(qt, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
