"""What one batch costs the worker: CPU and wall time of ``process_batch``, in process,
on PostgreSQL and Redis with production settings.

The alert and ingest benchmarks measure a whole stack sharing two cores; this one
isolates the worker's share, the figure to size the worker tier by. Per patient and
round, four batches are stored and processed one after another:

- routine: four normal vital signs (the bulk of a ward's traffic);
- raise: the same with a fever (39.8 °C), which raises ``temperature_high``;
- clear: normal vitals again, which resolve it;
- ecg: normal vitals with a 10 s, 250 Hz ECG segment (analysis, features, rhythm).

Timed: ``telemetry.processing.process_batch`` only (storing is the upload's cost).
CPU is this process's; PostgreSQL's is read from /proc for every postgres process,
so run it on a quiet machine. Baseline, in the same run: one database round trip
(``SELECT 1`` through Django's connection). Queries per kind are counted in a
separate pass, since counting them costs time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rpm \\
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/batch_cost.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._stack import (  # noqa: E402
    bench_admin,
    bench_env,
    create_database,
    postgres_cpu_s,
    provision_devices,
)

KINDS = ("routine", "raise", "clear", "ecg")
FEVER = 39.8
ECG_FS = 250
ECG_SECONDS = 10


def setup_django(workdir: Path) -> None:
    env = bench_env(workdir, debug=False, rate="1000000/min", settings="rpm.settings")
    env["LOG_LEVEL"] = "WARNING"
    create_database(env)
    os.environ.update(env)
    import django

    django.setup()


def provision(patients: int) -> list:
    provisioned = provision_devices("Batch cost", patients, expected_interval_s=3600)
    bench_admin("Batch cost")  # raising and resolving push to a clinician's stream
    return [p.device for p in provisioned]


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def body(kind: str, when: datetime, ecg: np.ndarray) -> bytes:
    at = _iso(when)
    temperature = FEVER if kind == "raise" else 36.8
    batch = {
        "batch_id": str(uuid.uuid4()),
        "sent_at": at,
        "battery_pct": 90,
        "observations": [
            {"code": "8867-4", "value": 72, "unit": "/min", "time": at},
            {"code": "2708-6", "value": 97, "unit": "%", "time": at},
            {"code": "9279-1", "value": 15, "unit": "/min", "time": at},
            {"code": "8310-5", "value": temperature, "unit": "Cel", "time": at},
        ],
    }
    if kind == "ecg":
        start = when - timedelta(seconds=ECG_SECONDS)
        batch["ecg"] = [
            {
                "lead": "II",
                "fs_hz": ECG_FS,
                "start": _iso(start),
                "unit": "uV",
                "samples": [int(v) for v in np.round(ecg * 1000)],
            }
        ]
    return json.dumps(batch).encode()


def store(device, raw: bytes) -> int:
    from telemetry.contract import fingerprint, parse_batch
    from telemetry.models import Batch
    from telemetry.services import record_batch

    batch, problems = parse_batch(raw)
    assert batch is not None, problems
    record_batch(device=device, batch=batch, fingerprint=fingerprint(batch))
    return Batch.objects.get(device=device, batch_id=batch.batch_id).pk


def ecg_segments(count: int) -> list[np.ndarray]:
    from telemetry.simulator.ecg import EcgStream, Rhythm

    stream = EcgStream(ECG_FS, np.random.default_rng(7))
    sinus = Rhythm("sinus", 72.0)
    return [
        stream.segment(i * ECG_SECONDS, ECG_SECONDS, sinus, "clean")
        for i in range(count)
    ]


def run_rounds(devices: list, rounds: int, ecg: list[np.ndarray]) -> dict:
    """Per kind: CPU and wall ms of each process_batch, and PostgreSQL CPU ms."""
    from telemetry.processing import process_batch

    cpu: dict[str, list[float]] = {k: [] for k in KINDS}
    wall: dict[str, list[float]] = {k: [] for k in KINDS}
    pg: dict[str, float] = dict.fromkeys(KINDS, 0.0)
    for r in range(rounds):
        for i, device in enumerate(devices):
            for kind in KINDS:
                # Device time is now: an older one would raise a clock-skew alarm.
                now = datetime.now(UTC)
                pk = store(device, body(kind, now, ecg[(r + i) % len(ecg)]))
                pg_before = postgres_cpu_s()
                c0, w0 = time.process_time(), time.perf_counter()
                assert process_batch(pk)
                wall[kind].append((time.perf_counter() - w0) * 1000)
                cpu[kind].append((time.process_time() - c0) * 1000)
                pg[kind] += postgres_cpu_s() - pg_before
    return {
        kind: {
            "cpu_ms": statistics.fmean(cpu[kind]),
            "wall_ms": statistics.fmean(wall[kind]),
            "wall_p50_ms": statistics.median(wall[kind]),
            "postgres_cpu_ms": 1000 * pg[kind] / len(cpu[kind]),
        }
        for kind in KINDS
    }


def round_trip(repeats: int) -> tuple[float, float]:
    """CPU and wall ms of one SELECT 1 through Django's connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(repeats):
            cursor.execute("SELECT 1")
            cursor.fetchone()
        wall = (time.perf_counter() - w0) * 1000 / repeats
        cpu = (time.process_time() - c0) * 1000 / repeats
    return cpu, wall


def count_queries(devices: list, ecg: list[np.ndarray]) -> dict[str, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from telemetry.processing import process_batch

    counts = {}
    for kind in KINDS:
        pk = store(devices[0], body(kind, datetime.now(UTC), ecg[0]))
        with CaptureQueriesContext(connection) as queries:
            assert process_batch(pk)
        counts[kind] = len(queries)
    return counts


def check_alerts(expected: int) -> None:
    """Every fever raised its alert and every following normal batch resolved it."""
    from alerts.models import Alert

    fevers = Alert.objects.filter(kind="temperature_high")
    resolved = fevers.filter(state=Alert.State.RESOLVED).count()
    assert fevers.count() == resolved == expected, (fevers.count(), resolved)
    others = Alert.objects.exclude(kind="temperature_high")
    assert not others.exists(), list(others.values_list("kind", flat=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    setup_django(Path(tempfile.mkdtemp(prefix="batch-cost-")))
    from telemetry.analysis import preload

    preload()  # as a worker does at start-up (rpm/celery.py)
    devices = provision(args.patients)
    ecg = ecg_segments(16)
    run_rounds(devices[:5], 1, ecg)  # warm caches and connections, not counted
    base_before = round_trip(2000)
    figures = run_rounds(devices, args.rounds, ecg)
    base_after = round_trip(2000)
    check_alerts(5 + args.patients * args.rounds)
    queries = count_queries(devices, ecg)
    base_cpu = (base_before[0] + base_after[0]) / 2
    base_wall = (base_before[1] + base_after[1]) / 2
    n = args.patients * args.rounds
    print(
        f"baseline: SELECT 1 round trip {base_cpu:.3f} ms CPU, {base_wall:.3f} ms "
        f"wall (before {base_before[0]:.3f}/{base_before[1]:.3f}, after "
        f"{base_after[0]:.3f}/{base_after[1]:.3f})"
    )
    for kind, f in figures.items():
        print(
            f"{kind:8s}: {n} batches, {queries[kind]} queries; "
            f"CPU {f['cpu_ms']:.2f} ms (x{f['cpu_ms'] / base_cpu:.0f} a round trip), "
            "wall mean "
            f"{f['wall_ms']:.2f} p50 {f['wall_p50_ms']:.2f} ms, PostgreSQL CPU "
            f"{f['postgres_cpu_ms']:.2f} ms; one core of worker: "
            f"{1000 / f['cpu_ms']:.0f} batches/s"
        )
    result = {"bench": "batch_cost", "batches_per_kind": n}
    for kind, f in figures.items():
        result[f"{kind}_cpu_ms"] = round(f["cpu_ms"], 2)
        result[f"{kind}_wall_ms"] = round(f["wall_ms"], 2)
        result[f"{kind}_postgres_cpu_ms"] = round(f["postgres_cpu_ms"], 2)
        result[f"{kind}_queries"] = queries[kind]
        result[f"{kind}_ratio_to_round_trip"] = round(f["cpu_ms"] / base_cpu, 1)
    result["round_trip_cpu_ms"] = round(base_cpu, 4)
    result["round_trip_wall_ms"] = round(base_wall, 4)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
