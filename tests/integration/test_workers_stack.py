"""ECG analysis and NEWS2 scoring done by a real Celery worker on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

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
