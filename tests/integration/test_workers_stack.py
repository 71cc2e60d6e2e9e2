"""ECG analysis and NEWS2 scoring done by a real Celery worker on PostgreSQL."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection

from telemetry.models import Batch, EcgAnalysis, News2Score
from tests.test_telemetry_ingest import batch, iso, now
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
