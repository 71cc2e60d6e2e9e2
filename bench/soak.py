"""Soak under faults: 100,000 readings from device clients through worker kills and
restarts of Redis, Daphne and PostgreSQL, then the Jepsen-style checks.

The integration suite's fault test (tests/integration/test_faults.py) at five times
its size, on the same throwaway PostgreSQL cluster and redis-server:

    .venv/bin/python bench/soak.py [--devices 50] [--batches 55] [--per-batch 40]

It ends with one JSON line: sent, acknowledged, stored, lost, duplicated,
unexpected, alerts expected and raised.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration import faults as f  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--silent", type=int, default=5)
    parser.add_argument("--batches", type=int, default=56)
    parser.add_argument("--per-batch", type=int, default=40)
    parser.add_argument("--pace", type=float, default=4.0, help="s between batches")
    parser.add_argument("--kill-every", type=float, default=8.0)
    return parser.parse_args()


def chaos_schedule(seconds: float) -> list[tuple[float, str]]:
    """Each restart once, spread over the sending time."""
    return [
        (seconds * 0.2, "restart-redis"),
        (seconds * 0.45, "restart-daphne"),
        (seconds * 0.7, "restart-postgres"),
    ]


def summary(trial: f.Trial, seconds: float) -> dict:
    verdict = f.compare(
        f.acknowledged_readings(trial.fleet), f.stored_readings(trial.faults.dsn)
    )
    ecg = f.ecg_verdict(trial.faults.dsn, trial.fleet)
    raised = f.raised_alerts(trial.faults.dsn)
    expected = f.expected_alerts(trial.fleet.plans)
    late = [
        s
        for s, d in f.stale_delays(trial.faults.dsn, trial.fleet.plans).items()
        if d is None or d > f.STALE_SLACK.total_seconds()
    ]
    print(f"faults: {trial.chaos.log}")
    print(f"ecg: {ecg.segments} segments, {len(ecg.unanalysed)} not analysed once")
    wrong = (raised - expected) + (expected - raised)
    print(f"alerts unexpected or missing: {dict(wrong)}")
    print(f"stale alarms late or missing: {late}; socket drops {trial.watcher.drops}")
    missing = f.visible_alert_ids(trial.faults.dsn) - trial.watcher.seen
    print(f"alerts the clinician never saw: {sorted(missing)}; took {seconds:.0f} s")
    return {
        "bench": "faults",
        "sent": trial.fleet.sent_observations,
        "acknowledged": verdict.acknowledged,
        "stored": verdict.stored,
        "lost": len(verdict.lost),
        "duplicated": len(verdict.duplicated),
        "unexpected": len(verdict.unexpected),
        "alerts_expected": sum(expected.values()),
        "alerts_raised": sum(raised.values()),
    }


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rpm-soak-"))
    faults = f.build_fault_stack(workdir)
    size = f.TrialSize(
        args.devices, args.silent, args.batches, args.per_batch, args.pace
    )
    chaos = f.Chaos(faults, args.kill_every, chaos_schedule(args.batches * args.pace))
    started = time.monotonic()
    try:
        trial = f.run_trial(faults, workdir, size, chaos)
        result = summary(trial, time.monotonic() - started)
    finally:
        faults.stop()
    print(f"logs: {workdir}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
