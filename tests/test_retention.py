"""Retention: old vital signs summarised then dropped, old ECG dropped, bounded
and idempotent, the audit log untouched."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.conf import settings
from django.test import override_settings

from rpm.celery import app
from security.models import AuditEvent
from telemetry.models import (
    Batch,
    EcgAnalysis,
    EcgSegment,
    News2Score,
    Observation,
    VitalSummary,
    pack_samples,
)
from telemetry.retention import apply_retention

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
HR, ACVPU = "8867-4", "80288-4"
# With 10 days' retention the cutoff is 2026-05-22 12:00 (rounded down to the hour).
H8 = datetime(2026, 5, 20, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _short_retention():
    with override_settings(VITALS_RETENTION_DAYS=10, ECG_RETENTION_DAYS=2):
        yield


def new_batch(device) -> Batch:
    return Batch.objects.create(
        device=device,
        patient_id=device.patient_id,
        batch_id=uuid.uuid4(),
        fingerprint="f" * 64,
        sent_at=NOW,
        received_at=NOW,
        observation_count=0,
        ecg_count=0,
        queued_at=NOW,
    )


def readings(device, *items: tuple[str, datetime, float | str]) -> list[Observation]:
    stored = new_batch(device)
    return Observation.objects.bulk_create(
        Observation(
            patient_id=device.patient_id,
            device=device,
            batch=stored,
            code=code,
            value=None if isinstance(value, str) else value,
            text=value if isinstance(value, str) else "",
            unit="{ACVPU}" if isinstance(value, str) else "/min",
            time=time,
        )
        for code, time, value in items
    )


def summaries() -> dict[tuple, tuple]:
    return {
        (s.code, s.period, s.bucket_start): (s.count, s.min, s.max, s.mean)
        for s in VitalSummary.objects.all()
    }


@pytest.fixture
def old_and_new(device):
    s = timedelta(seconds=1)
    return readings(
        device.device,
        (HR, H8 + 10 * s, 70),
        (HR, H8 + 40 * s, 80),
        (HR, H8 + 65 * s, 90),
        (ACVPU, H8 + 20 * s, "A"),
        (HR, H8 + timedelta(minutes=75), 60),
        # In the cutoff's hour, which is not over yet: kept until the next run.
        (HR, datetime(2026, 5, 22, 12, 10, tzinfo=UTC), 65),
        (HR, NOW - timedelta(hours=1), 72),
    )


EXPECTED = {
    (HR, "minute", H8): (2, 70, 80, 75),
    (HR, "minute", H8 + timedelta(minutes=1)): (1, 90, 90, 90),
    (HR, "hour", H8): (3, 70, 90, 80),
    (HR, "minute", H8 + timedelta(minutes=75)): (1, 60, 60, 60),
    (HR, "hour", H8 + timedelta(hours=1)): (1, 60, 60, 60),
    (ACVPU, "minute", H8): (1, None, None, None),
    (ACVPU, "hour", H8): (1, None, None, None),
}


def test_old_vitals_become_minute_and_hour_summaries_and_are_dropped(old_and_new):
    report = apply_retention(now=NOW)
    assert summaries() == EXPECTED
    assert (report.vitals_dropped, report.summaries_written) == (5, 7)
    assert report.finished
    kept = sorted(Observation.objects.values_list("value", flat=True))
    assert kept == [65, 72]


def test_running_it_again_changes_nothing(old_and_new):
    apply_retention(now=NOW)
    again = apply_retention(now=NOW)
    assert (again.vitals_dropped, again.summaries_written, again.ecg_dropped) == (
        0,
        0,
        0,
    )
    assert summaries() == EXPECTED
    assert Observation.objects.count() == 2


def test_a_small_budget_drops_whole_hours_and_later_runs_finish_the_job(old_and_new):
    first = apply_retention(now=NOW, max_rows=3, chunk_rows=3)
    assert not first.finished
    # The first hour held three readings of one code: summarised whole, or not yet.
    hour = summaries().get((HR, "hour", H8))
    assert hour in (None, (3, 70, 90, 80))
    for _ in range(5):
        if apply_retention(now=NOW, max_rows=3, chunk_rows=3).finished:
            break
    assert summaries() == EXPECTED
    assert Observation.objects.count() == 2


def test_a_late_reading_of_a_summarised_hour_is_merged_into_its_summaries(
    old_and_new, device
):
    apply_retention(now=NOW)
    readings(device.device, (HR, H8 + timedelta(minutes=30), 100))
    apply_retention(now=NOW)
    assert summaries()[(HR, "hour", H8)] == (4, 70, 100, 85)
    assert summaries()[(HR, "minute", H8 + timedelta(minutes=30))] == (1, 100, 100, 100)


def test_news2_scores_stay_but_lose_their_links_to_dropped_readings(
    old_and_new, patient
):
    score = News2Score.objects.create(
        patient=patient,
        as_of=H8 + timedelta(minutes=2),
        total=1,
        risk="low",
        partial=True,
        subscores={"pulse_rate": 0},
        missing=[],
        spo2_scale=1,
        computed_at=H8,
    )
    score.observations.set(old_and_new[:2] + old_and_new[-1:])
    apply_retention(now=NOW)
    score.refresh_from_db()
    assert (score.total, score.risk) == (1, "low")
    assert list(score.observations.values_list("value", flat=True)) == [72]


def segment(device, start: datetime) -> EcgSegment:
    dtype, data = pack_samples(np.arange(2500, dtype=np.int32))
    return EcgSegment.objects.create(
        patient_id=device.patient_id,
        device=device,
        batch=new_batch(device),
        lead="II",
        fs_hz=250,
        start=start,
        sample_count=2500,
        dtype=dtype,
        data=data,
        state=EcgSegment.State.ANALYSED,
    )


def test_old_ecg_is_dropped_with_its_analysis_and_recent_ecg_kept(device):
    old = segment(device.device, NOW - timedelta(days=3))
    recent = segment(device.device, NOW - timedelta(days=1))
    EcgAnalysis.objects.create(
        segment=old,
        patient_id=old.patient_id,
        start=old.start,
        rhythm="sinus",
        usable=True,
        quality=0.9,
        beat_count=12,
        features={},
    )
    report = apply_retention(now=NOW)
    assert report.ecg_dropped == 1
    assert list(EcgSegment.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not EcgAnalysis.objects.exists()
    assert Batch.objects.count() == 2  # upload records stay


def test_the_audit_log_is_never_touched(old_and_new, patient):
    AuditEvent.objects.create(action="patient.read", patient=patient)
    before = list(AuditEvent.objects.values_list("pk", "action", "at"))
    apply_retention(now=NOW)
    assert list(AuditEvent.objects.values_list("pk", "action", "at")) == before


def test_it_is_a_periodic_task_that_beat_and_run_periodic_run(old_and_new):
    entry = settings.CELERY_BEAT_SCHEDULE["apply-retention"]
    app.loader.import_default_modules()
    with override_settings(VITALS_RETENTION_DAYS=(datetime.now(UTC) - H8).days - 1):
        result = app.tasks[entry["task"]].apply()
    assert result.successful(), result.result
    assert result.result["vitals_dropped"] == 5
