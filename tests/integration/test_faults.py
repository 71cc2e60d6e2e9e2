"""Nothing lost, nothing doubled: device clients upload through faults, Jepsen-style.

Fifty device clients send 20,000 vital signs (and ECG strips) to a stack on a
PostgreSQL cluster and a Redis server of the suite's own, while the Celery worker is
SIGKILLed every few seconds and Redis, Daphne and PostgreSQL are each restarted once.
Then the history the clients were acknowledged for is compared with the database,
every ECG segment must have been analysed once (the beat-scheduled sweep requeues
what a killed worker or the emptied broker lost), every planned alert raised once
and no other, every silent device reported stale in time, and a clinician whose
socket dropped must have been shown every alert. ``make soak`` runs the same with
100,000 readings (bench/soak.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import faults as f

# The whole trial runs in the module fixture (fleet up to 270 s, settle up to
# 240 s): pytest-timeout's 300 s default counts fixture setup.
pytestmark = pytest.mark.timeout(900)

DEVICES, SILENT, PER_BATCH = 50, 5, 40
# 45 sending devices x 12 batches x 40 readings, and 2 batches from each silent one.
BATCHES = 20_000 // ((DEVICES - SILENT) * PER_BATCH) + 1
CHAOS = [(10.0, "restart-redis"), (25.0, "restart-daphne"), (40.0, "restart-postgres")]
KILL_WORKER_EVERY_S = 8.0


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Iterator[f.Trial]:
    workdir = tmp_path_factory.mktemp("faults")
    faults = f.build_fault_stack(workdir)
    try:
        yield f.run_trial(
            faults,
            workdir,
            f.TrialSize(DEVICES, SILENT, BATCHES, PER_BATCH, pace_s=4.0),
            f.Chaos(faults, KILL_WORKER_EVERY_S, CHAOS),
        )
    finally:
        faults.stop()


def test_every_fault_was_injected_while_devices_were_sending(run):
    faults_done = [what for _, what in run.chaos.log]
    assert {"restart-redis", "restart-daphne", "restart-postgres"} <= set(faults_done)
    assert faults_done.count("kill-worker") >= 3
    assert run.fleet.sent_observations >= 20_000
    assert run.undrained == []


def test_every_acknowledged_reading_is_stored_exactly_once(run):
    verdict = f.compare(
        f.acknowledged_readings(run.fleet), f.stored_readings(run.faults.dsn)
    )
    assert verdict.acknowledged == run.fleet.sent_observations
    assert (verdict.lost, verdict.duplicated, verdict.unexpected) == ([], [], [])


def test_every_stored_ecg_segment_is_analysed_exactly_once(run):
    ecg = f.ecg_verdict(run.faults.dsn, run.fleet)
    assert ecg.segments == ecg.acknowledged == run.fleet.sent_ecg > 0
    assert ecg.unanalysed == []


def test_every_planned_alert_is_raised_once_and_no_other(run):
    assert f.raised_alerts(run.faults.dsn) == f.expected_alerts(run.fleet.plans)


def test_every_silent_device_is_reported_stale_within_its_window_plus_a_minute(run):
    delays = f.stale_delays(run.faults.dsn, run.fleet.plans)
    late = {
        serial: delay
        for serial, delay in delays.items()
        if delay is None or delay > f.STALE_SLACK.total_seconds()
    }
    assert len(delays) == SILENT
    assert late == {}


def test_a_clinician_whose_socket_dropped_has_every_alert_after_catching_up(run):
    assert run.watcher.drops >= 1  # Daphne's restart cut the socket at least
    missing = f.visible_alert_ids(run.faults.dsn) - run.watcher.seen
    assert missing == set()
