"""ECG analysis and NEWS2 scoring done by a real Celery worker on PostgreSQL."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection

from alerts.models import Alert
from telemetry.models import Batch, EcgAnalysis, News2Score
from tests.test_telemetry_ingest import batch, iso, now, obs
from tests.test_telemetry_processing import full_set, sine_ecg

from .stack import wait_until
from .test_ingest_stack import upload

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_worker_analyses_ecg_and_scores_news2(stack, device):
    t = now() - timedelta(seconds=20)
    segment = {
        "lead": "II",
        "fs_hz": 250,
        "start": iso(t),
        "unit": "uV",
        "samples": sine_ecg(10),
    }
    body = batch(observations=full_set(t, rr=26, spo2=91, sbp=95), ecg=[segment])
    assert upload(stack, device.token, body).status_code == 201
    wait_until(
        lambda: Batch.objects.filter(state=Batch.State.PROCESSED).exists(),
        60,
        lambda: "not processed:\n" + stack.worker.log()[-3000:],
    )
    score = News2Score.objects.get()
    assert (score.total, score.risk, score.partial) == (3 + 3 + 2, "high", False)
    analysis = EcgAnalysis.objects.get()
    assert analysis.rhythm == "sinus"
    assert analysis.segment.state == "analysed"


def test_the_worker_keeps_its_database_connections_between_tasks(stack, device):
    """Celery's Django fix-up closed the whole connection pool before and after
    every task: three new PostgreSQL sessions per batch (CELERY_DB_REUSE_MAX)."""

    def sessions_ended() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT sessions FROM pg_stat_database"
                " WHERE datname = current_database()"
            )
            return cursor.fetchone()[0]

    # Warm: the worker has run a task, so its pool is open.
    assert upload(stack, device.token, batch(ecg=[])).status_code == 201
    wait_until(lambda: not Batch.objects.filter(state="pending").exists(), 30, "idle")
    before = sessions_ended()
    for _ in range(20):
        assert upload(stack, device.token, batch(ecg=[])).status_code == 201
    wait_until(
        lambda: Batch.objects.filter(state=Batch.State.PROCESSED).count() == 21,
        60,
        lambda: "not processed:\n" + stack.worker.log()[-3000:],
    )
    time.sleep(1)  # a session is counted when it ends
    assert sessions_ended() - before < 10


def test_a_batch_whose_worker_child_dies_is_sent_again_at_once(stack, device):
    """A pool child killed mid-task (the OOM killer, a crash in native code): the
    batch is processed by another child within seconds, from the urgent queue it
    came from, instead of waiting a minute or more for the sweep (not running
    here, so without the retry the batch would stay pending)."""
    var = Path(stack.env["RPM_VAR_DIR"])
    var.mkdir(parents=True, exist_ok=True)
    (var / "held.pid").unlink(missing_ok=True)
    (var / "hold-next-batch").touch()
    fever = batch(ecg=[], observations=[obs("8310-5", 39.8, "Cel")])
    assert upload(stack, device.token, fever).status_code == 201
    wait_until(
        lambda: (var / "held.pid").exists(),
        30,
        lambda: "no child took the batch:\n" + stack.worker.log()[-3000:],
    )
    stored = Batch.objects.get()
    assert stored.state == Batch.State.PENDING
    os.kill(int((var / "held.pid").read_text()), signal.SIGKILL)
    killed = time.monotonic()
    wait_until(
        lambda: Batch.objects.filter(state=Batch.State.PROCESSED).exists(),
        20,
        lambda: "not processed after the kill:\n" + stack.worker.log()[-3000:],
    )
    assert time.monotonic() - killed < 20
    assert Alert.objects.filter(kind="temperature_high").count() == 1
    queue = f"{stack.env['CELERY_QUEUE']}.urgent"
    deliveries = (var / "deliveries.log").read_text().split("\n")
    ours = [line.split()[1] for line in deliveries if line.startswith(f"{stored.pk} ")]
    assert ours == [queue, queue], deliveries


def test_a_batch_that_kills_every_child_is_tried_nine_times_and_left_to_the_sweep(
    stack, device, other_device
):
    """A batch that crashes whatever child takes it (native code, memory) must not
    be retried in a hot loop, nor hold up other patients' alarms: the first
    delivery and max_retries (8) more, then it waits, stored and pending, for
    the sweep, which processes it once the fault is gone."""
    var = Path(stack.env["RPM_VAR_DIR"])
    var.mkdir(parents=True, exist_ok=True)
    log = var / "deliveries.log"
    log.touch()
    seen_before = log.stat().st_size  # the log is the whole session's
    poison = batch(ecg=[], observations=[obs("8310-5", 39.8, "Cel")])
    (var / "poison-batch").write_text(poison["batch_id"])
    try:
        assert upload(stack, device.token, poison).status_code == 201
        stored = Batch.objects.get()

        def deliveries() -> int:
            lines = log.read_text()[seen_before:].split("\n")
            return sum(line.startswith(f"{stored.pk} ") for line in lines)

        wait_until(
            lambda: deliveries() >= 9,
            90,
            lambda: f"{deliveries()} deliveries:\n" + stack.worker.log()[-3000:],
        )
        # Meanwhile another patient's alarm goes through.
        fever = batch(ecg=[], observations=[obs("8310-5", 39.8, "Cel")])
        assert upload(stack, other_device.token, fever).status_code == 201
        wait_until(
            lambda: Alert.objects.filter(patient=other_device.device.patient).exists(),
            30,
            lambda: "no alarm for the other patient:\n" + stack.worker.log()[-3000:],
        )
        time.sleep(5)  # long enough for a tenth delivery, had there been one
        assert deliveries() == 9
        assert Batch.objects.get(pk=stored.pk).state == Batch.State.PENDING
    finally:
        (var / "poison-batch").unlink(missing_ok=True)
    # The fault mended, the sweep's next run processes it.
    Batch.objects.filter(pk=stored.pk).update(
        queued_at=stored.queued_at - timedelta(minutes=5)
    )
    from telemetry.tasks import sweep_unprocessed_batches

    stack.run_task(sweep_unprocessed_batches)
    wait_until(
        lambda: Batch.objects.get(pk=stored.pk).state == Batch.State.PROCESSED,
        30,
        lambda: "the swept batch was not processed:\n" + stack.worker.log()[-3000:],
    )
    assert Alert.objects.filter(patient=device.device.patient).count() == 1


def test_the_worker_loads_the_ecg_analysis_before_it_takes_tasks(stack):
    """NeuroKit2 takes about 2 s to import: the worker's main process imports it
    at start-up, before it forks its pool, so no ECG waits for it."""
    log = stack.worker.log()
    assert "ECG analysis loaded in" in log, log[-3000:]
    assert log.index("ECG analysis loaded in") < log.index("ready."), log[-3000:]
