"""Storing what devices send: exactly once, then processing it after the commit."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from alerts import rules
from patients.models import Device
from rpm import metrics

from . import scoring
from .contract import NEWS2_INPUT_OF, BatchIn, Reading, news2_value, readings
from .models import Batch, EcgSegment, Observation, pack_samples


class BatchAnswer(TypedDict):
    batch_id: str
    observations: int
    ecg_segments: int


@dataclass(frozen=True)
class Stored:
    answer: BatchAnswer
    created: bool  # False: the same batch again, already stored


class BatchConflict(Exception):
    """The batch ID was used before for a different batch."""


def record_batch(*, device: Device, batch: BatchIn, fingerprint: str) -> Stored:
    """Store a batch once. A second upload of the same batch changes nothing and
    gets the first answer; a different batch under the same ID is a conflict."""
    try:
        with transaction.atomic():
            stored, urgent = _insert(device, batch, fingerprint)
            transaction.on_commit(lambda: _queue(stored.pk, urgent=urgent))
            # Counted once stored, whichever API it came through (device, sealed
            # or edge upload), and only if the outer transaction commits.
            transaction.on_commit(
                lambda: metrics.count_readings(
                    observations=stored.observation_count,
                    ecg_segments=stored.ecg_count,
                )
            )
    except IntegrityError:
        stored = Batch.objects.filter(device=device, batch_id=batch.batch_id).first()
        if stored is None:
            raise
        if stored.fingerprint != fingerprint:
            raise BatchConflict(str(batch.batch_id)) from None
        return Stored(answer=_answer(stored), created=False)
    return Stored(answer=_answer(stored), created=True)


def _insert(device: Device, batch: BatchIn, fingerprint: str) -> tuple[Batch, bool]:
    """The stored batch, and whether it carries a reading worth an alarm."""
    now = timezone.now()
    found = readings(batch)
    urgent = _urgent(device, found)
    stored = Batch.objects.create(
        device=device,
        patient_id=device.patient_id,
        batch_id=batch.batch_id,
        fingerprint=fingerprint,
        sent_at=batch.sent_at,
        received_at=now,
        battery_pct=batch.battery_pct,
        observation_count=len(batch.observations),
        ecg_count=len(batch.ecg),
        queued_at=now,
        urgent=urgent,
    )
    _insert_observations(device, stored, found)
    EcgSegment.objects.bulk_create(_segment(device, stored, s) for s in batch.ecg)
    _touch_device(device, now, batch.battery_pct)
    return stored, urgent


# Triage: a reading this many NEWS2 points or more (amber and red on the chart).
URGENT_NEWS2_POINTS = 2


def _urgent(device: Device, found: list[Reading]) -> bool:
    """Triage: a reading beyond its alert threshold or scoring 2 or 3 on its own
    NEWS2 row, both as the patient's settings have them. Only the queue depends on
    it: the worker applies every rule to every batch whichever queue it came from."""
    patient = device.patient
    overrides = (patient.threshold_overrides if patient else None) or {}
    scale = patient.spo2_scale if patient else 1
    limits: dict[str, rules.Limit | None] = {}
    for r in found:
        if r.code not in limits:
            limits[r.code] = rules.effective_limit(r.code, overrides)
        limit = limits[r.code]
        if limit is not None and r.value is not None and limit.breached(r.value):
            return True
        if _news2_points(r.code, r.value, r.text, r.unit, scale) >= URGENT_NEWS2_POINTS:
            return True
    return False


@functools.lru_cache(maxsize=4096)
def _news2_points(
    code: str, value: float | None, text: str, unit: str, spo2_scale: int
) -> int:
    """One reading's points on its own NEWS2 row (0 if it has none). Readings
    repeat (heart rates are integers), so a batch of 600 costs a few dozen calls."""
    name = NEWS2_INPUT_OF.get(code)
    if name is None or name == "on_oxygen":  # oxygen is a state, not news
        return 0
    argument = news2_value(name, value, text, unit)
    if argument is None:
        return 0
    inputs: dict[str, Any] = dict.fromkeys(scoring.ARGUMENTS)
    inputs[name] = argument
    try:
        score = scoring.news2(**inputs, spo2_scale=spo2_scale)
    except (TypeError, ValueError):  # off the chart: worth a look first
        return URGENT_NEWS2_POINTS
    return max(score.subscores.values(), default=0)


OBSERVATION_FIELDS = (
    "patient_id",
    "device_id",
    "batch_id",
    "code",
    "value",
    "text",
    "unit",
    "time",
)


def _insert_observations(device: Device, stored: Batch, found: list[Reading]) -> None:
    owner = (device.patient_id, device.pk, stored.pk)
    rows = [(*owner, r.code, r.value, r.text, r.unit, r.time) for r in found]
    if not rows:
        return
    if connection.vendor != "postgresql":
        Observation.objects.bulk_create(
            Observation(**dict(zip(OBSERVATION_FIELDS, row, strict=True)))
            for row in rows
        )
        return
    # COPY on the request's own connection and transaction: atomic with the batch
    # row, and about half the CPU of building one model instance per reading.
    copy_sql = (
        f"COPY {Observation._meta.db_table} ({', '.join(OBSERVATION_FIELDS)}) "
        "FROM STDIN"
    )
    with connection.connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
        for row in rows:
            copy.write_row(row)


def _segment(device: Device, stored: Batch, segment) -> EcgSegment:
    samples = np.asarray(segment.samples, dtype=np.float64)
    if segment.unit == "mV":
        samples = samples * 1000.0
    dtype, data = pack_samples(np.rint(samples).astype(np.int32))
    return EcgSegment(
        patient_id=device.patient_id,
        device=device,
        batch=stored,
        lead=segment.lead,
        fs_hz=segment.fs_hz,
        start=segment.start,
        sample_count=samples.size,
        dtype=dtype,
        data=data,
    )


def _touch_device(device: Device, now: datetime, battery_pct: int | None) -> None:
    # When the device will be overdue is set here, when the data arrives, not when a
    # worker gets to it: a late or lost task must not delay the stale alarm. It only
    # ever moves forward, whatever order concurrent uploads commit in.
    overdue = (
        now
        + device.expected_interval
        + timedelta(seconds=settings.DEVICE_STALE_GRACE_S)
    )
    fields: dict[str, object] = {
        "last_seen_at": now,
        "overdue_at": Greatest(
            Coalesce(F("overdue_at"), Value(overdue)), Value(overdue)
        ),
    }
    if battery_pct is not None:
        fields["battery_pct"] = battery_pct
    Device.objects.filter(pk=device.pk).update(**fields)


def _answer(stored: Batch) -> BatchAnswer:
    return {
        "batch_id": str(stored.batch_id),
        "observations": stored.observation_count,
        "ecg_segments": stored.ecg_count,
    }


def _queue(batch_pk: int, *, urgent: bool = False) -> None:
    from .tasks import process_batch

    if urgent:
        process_batch.apply_async((batch_pk,), queue=settings.URGENT_TASK_QUEUE)
    else:
        process_batch.delay(batch_pk)


def requeue_stale_batches(
    *, older_than: timedelta = timedelta(minutes=1), limit: int = 500
) -> int:
    """The sweep: queue again every batch not processed within ``older_than`` of
    its last queueing, so a lost task or a dead worker never loses an analysis."""
    cutoff = timezone.now() - older_than
    stale = list(
        Batch.objects.filter(state=Batch.State.PENDING, queued_at__lt=cutoff)
        .order_by("-urgent", "queued_at")
        .values_list("pk", "urgent")[:limit]
    )
    for pk, urgent in stale:
        claimed = Batch.objects.filter(
            pk=pk, state=Batch.State.PENDING, queued_at__lt=cutoff
        )
        # Claim with a guarded update, so two sweeps never queue one batch twice.
        if claimed.update(queued_at=timezone.now(), queue_count=F("queue_count") + 1):
            _queue(pk, urgent=urgent)
    return len(stale)
