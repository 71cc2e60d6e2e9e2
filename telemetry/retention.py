"""Retention: raw ECG and raw vital signs are kept for a configured time.

- **Vital signs** older than ``VITALS_RETENTION_DAYS`` are first summarised per
  patient, code, minute and hour (count, min, max, mean: ``VitalSummary``), then
  dropped, in one transaction per chunk, so a reading is summarised exactly once.
  Whole hours only: a chunk never splits an hour, and the cutoff is rounded down to
  the hour, so every summary is complete when written (a late reading of a summarised
  hour, possible only with a retention shorter than the 7 days an upload may
  reach back, is merged into it). The NEWS2 scores computed from dropped readings
  stay, with their totals and subscores; only their links to those readings go.
- **ECG segments** older than ``ECG_RETENTION_DAYS`` are dropped with their
  analyses (rhythm, intervals). Alerts keep what they showed: their evidence and
  every event's snapshot are stored in the alert itself.
- Batches (upload metadata, a few numbers each) and the audit log are never touched.

Each run deletes at most ``RETENTION_MAX_ROWS_PER_RUN`` rows, in transactions of at
most ``RETENTION_CHUNK_ROWS``, patient after patient; the next run goes on where
the data still is. Running it twice, or two at once, changes nothing more: rows are
locked as they are chosen and a dropped row is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from patients.models import Patient

from .contract import CODES
from .models import EcgAnalysis, EcgSegment, News2Score, Observation, VitalSummary

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
PERIODS = {
    VitalSummary.Period.MINUTE: lambda t: t.replace(second=0, microsecond=0),
    VitalSummary.Period.HOUR: lambda t: t.replace(minute=0, second=0, microsecond=0),
}


@dataclass
class RetentionReport:
    vitals_dropped: int = 0
    summaries_written: int = 0
    ecg_dropped: int = 0
    budget_left: int = 0

    @property
    def finished(self) -> bool:
        """False when the run stopped at its row budget with more to do."""
        return self.budget_left > 0


def apply_retention(
    *,
    now: datetime | None = None,
    max_rows: int | None = None,
    chunk_rows: int | None = None,
) -> RetentionReport:
    now = now or timezone.now()
    report = RetentionReport(
        budget_left=max_rows or settings.RETENTION_MAX_ROWS_PER_RUN
    )
    chunk = chunk_rows or settings.RETENTION_CHUNK_ROWS
    ecg_cutoff = now - timedelta(days=settings.ECG_RETENTION_DAYS)
    vitals_cutoff = PERIODS[VitalSummary.Period.HOUR](
        now - timedelta(days=settings.VITALS_RETENTION_DAYS)
    )
    for patient_id in Patient.objects.order_by("pk").values_list("pk", flat=True):
        _drop_ecg(patient_id, ecg_cutoff, chunk, report)
        for code in CODES:
            _drop_vitals(patient_id, code, vitals_cutoff, chunk, report)
        if not report.finished:
            break
    log.info(
        "retention: %d vital signs dropped into %d summaries, %d ECG segments dropped",
        report.vitals_dropped,
        report.summaries_written,
        report.ecg_dropped,
        extra={"finished": report.finished},
    )
    return report


# --- ECG -----------------------------------------------------------------------------


def _drop_ecg(
    patient_id: int, cutoff: datetime, chunk: int, report: RetentionReport
) -> None:
    while report.finished:
        # "A patient's ECG before a time": the ecg_patient_start index.
        with transaction.atomic():
            ids = list(
                EcgSegment.objects.select_for_update()
                .filter(patient_id=patient_id, start__lt=cutoff)
                .order_by("start", "pk")
                .values_list("pk", flat=True)[: min(chunk, report.budget_left)]
            )
            if not ids:
                return
            EcgAnalysis.objects.filter(segment_id__in=ids).delete()
            # only("pk"): the deletion must not read the samples it throws away.
            EcgSegment.objects.filter(pk__in=ids).only("pk").delete()
        report.ecg_dropped += len(ids)
        report.budget_left -= len(ids)


# --- vital signs ---------------------------------------------------------------------


@dataclass
class Bucket:
    unit: str
    count: int = 0
    numeric: list[float] = field(default_factory=list)

    def add(self, unit: str, value: float | None) -> None:
        self.unit = self.unit or unit
        self.count += 1
        if value is not None:
            self.numeric.append(value)


Row = tuple[int, datetime, float | None, str]  # pk, time, value, unit
Key = tuple[str, datetime]  # period, bucket start


def _drop_vitals(
    patient_id: int,
    code: str,
    cutoff: datetime,
    chunk: int,
    report: RetentionReport,
) -> None:
    while report.finished:
        with transaction.atomic():
            rows = _lock_whole_hours(
                patient_id, code, cutoff, min(chunk, report.budget_left)
            )
            if not rows:
                return
            written = _summarise(patient_id, code, rows)
            _delete_observations([row[0] for row in rows])
        report.vitals_dropped += len(rows)
        report.summaries_written += written
        report.budget_left -= len(rows)


def _lock_whole_hours(
    patient_id: int, code: str, cutoff: datetime, limit: int
) -> list[Row]:
    """The oldest readings before the cutoff, up to ``limit``, cut back to whole
    hours; a single hour with more readings than that is taken whole."""
    # "Range per code per patient": the obs_patient_code_time index, in time order.
    old = Observation.objects.select_for_update().filter(
        patient_id=patient_id, code=code, time__lt=cutoff
    )
    fields = ("pk", "time", "value", "unit")
    rows: list[Row] = list(old.order_by("time", "pk").values_list(*fields)[:limit])
    if len(rows) < limit:
        return rows  # everything before the cutoff: whole hours already
    last_hour = PERIODS[VitalSummary.Period.HOUR](rows[-1][1])
    whole = [row for row in rows if row[1] < last_hour]
    if whole:
        return whole
    hour = old.filter(time__gte=last_hour, time__lt=last_hour + HOUR)
    return list(hour.order_by("time", "pk").values_list(*fields))


def _summarise(patient_id: int, code: str, rows: Iterable[Row]) -> int:
    buckets: dict[Key, Bucket] = {}
    for _, time, value, unit in rows:
        for period, floor in PERIODS.items():
            buckets.setdefault((period, floor(time)), Bucket(unit)).add(unit, value)
    existing = {
        (s.period, s.bucket_start): s
        for s in VitalSummary.objects.select_for_update().filter(
            patient_id=patient_id,
            code=code,
            bucket_start__in={start for _, start in buckets},
        )
    }
    new, merged = [], []
    for key, bucket in buckets.items():
        if key in existing:
            merged.append(_merge(existing[key], bucket))
        else:
            new.append(_summary(patient_id, code, key, bucket))
    VitalSummary.objects.bulk_create(new)
    VitalSummary.objects.bulk_update(
        merged, ["count", "numeric_count", "min", "max", "mean"]
    )
    return len(new) + len(merged)


def _summary(patient_id: int, code: str, key: Key, bucket: Bucket) -> VitalSummary:
    values = bucket.numeric
    return VitalSummary(
        patient_id=patient_id,
        code=code,
        unit=bucket.unit,
        period=key[0],
        bucket_start=key[1],
        count=bucket.count,
        numeric_count=len(values),
        min=min(values) if values else None,
        max=max(values) if values else None,
        mean=sum(values) / len(values) if values else None,
    )


def _merge(summary: VitalSummary, bucket: Bucket) -> VitalSummary:
    values = bucket.numeric
    if values:
        n = summary.numeric_count
        total = (summary.mean or 0.0) * n + sum(values)
        summary.min = min(values + ([summary.min] if n else []))
        summary.max = max(values + ([summary.max] if n else []))
        summary.mean = total / (n + len(values))
        summary.numeric_count = n + len(values)
    summary.count += bucket.count
    return summary


def _delete_observations(ids: list[int]) -> None:
    # The NEWS2 scores stay; they lose only their links to the readings dropped.
    News2Score.observations.through.objects.filter(observation_id__in=ids).delete()
    Observation.objects.filter(pk__in=ids).only("pk").delete()
