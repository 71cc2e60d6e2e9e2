"""Storing what a gateway sends, and the clinicians' fetches of ECG it kept.

An edge batch is a Batch (the readings, through record_batch: idempotent on the
batch_id, processed after the commit like any other) plus what the gateway worked
out. Everything is one transaction, so a retry finds either all of it or nothing:
the gateway's alert outcomes are applied exactly once, before the commit queues
the server's own processing of the same readings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict
from uuid import uuid4

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from alerts.edge import apply_edge_outcomes
from alerts.rules import Clear, Finding, Outcome
from patients.models import Device, Patient, User

from .contract import MAX_ECG_SECONDS
from .edge_contract import EdgeBatchIn, OutcomeIn, edge_fingerprint, raw_part
from .models import (
    Batch,
    EcgFetchRequest,
    EcgSegment,
    EdgeBatch,
    EdgeEcgFeatures,
    EdgeOutcome,
)
from .services import Stored, record_batch

MAX_FETCH = timedelta(hours=1)
LONGEST_STRIP = timedelta(seconds=MAX_ECG_SECONDS)  # a strip may start before the range


class EdgeAnswer(TypedDict):
    batch_id: str
    observations: int
    ecg_segments: int
    features: int
    outcomes: int


def record_edge_batch(*, gateway: Device, edge: EdgeBatchIn) -> tuple[EdgeAnswer, bool]:
    """Store an edge batch once and apply its alert outcomes; ``created`` is False
    for the same batch again. Raises BatchConflict like record_batch."""
    with transaction.atomic():
        stored = record_batch(
            device=gateway, batch=raw_part(edge), fingerprint=edge_fingerprint(edge)
        )
        if stored.created:
            _store_edge(gateway, edge)
    return _answer(stored, edge), stored.created


def _store_edge(gateway: Device, edge: EdgeBatchIn) -> None:
    batch = Batch.objects.get(device=gateway, batch_id=edge.batch_id)
    EdgeBatch.objects.create(
        batch=batch,
        policy=edge.policy,
        scores=[s.model_dump(mode="json") for s in edge.scores],
        outcome_count=len(edge.outcomes),
    )
    EdgeEcgFeatures.objects.bulk_create(_features(batch, edge))
    EdgeOutcome.objects.bulk_create(
        EdgeOutcome(
            patient_id=batch.patient_id,
            batch=batch,
            kind=o.kind,
            at=o.at,
            finding=o.type == "finding",
        )
        for o in edge.outcomes
    )
    # The batch's strips, read once (it holds at most a few), in time order.
    strips = [
        (s.start, s.start + timedelta(seconds=s.duration_s), s.pk)
        for s in batch.ecg_segments.only("start", "sample_count", "fs_hz").order_by(
            "start"
        )
    ]
    outcomes = [_outcome(o, strips) for o in edge.outcomes]
    apply_edge_outcomes(gateway=gateway, patient=batch.patient, outcomes=outcomes)
    _fulfil(batch, edge)


def _features(batch: Batch, edge: EdgeBatchIn) -> list[EdgeEcgFeatures]:
    rows = []
    for f in edge.features:
        data = f.model_dump(mode="json", exclude={"lead", "fs_hz", "start"})
        rows.append(
            EdgeEcgFeatures(
                patient_id=batch.patient_id,
                batch=batch,
                lead=f.lead,
                fs_hz=f.fs_hz,
                start=f.start,
                duration_s=f.duration_s,
                rhythm=f.rhythm,
                usable=f.usable,
                quality=f.quality,
                heart_rate_bpm=f.heart_rate_bpm,
                beat_count=f.beat_count,
                features=data,
            )
        )
    return rows


def _outcome(
    outcome: OutcomeIn, strips: list[tuple[datetime, datetime, int]]
) -> Outcome:
    if outcome.type == "clear":
        return Clear(outcome.kind, outcome.at)
    evidence = dict(outcome.evidence)
    # The evidence strip: the one stored with this batch that covers the finding.
    covering = (pk for start, end, pk in strips if start <= outcome.at < end)
    strip = next(covering, None)
    if strip is not None:
        evidence["segment_id"] = strip
    return Finding(
        outcome.kind, outcome.priority or "low", outcome.at, outcome.message, evidence
    )


# --- on-demand fetch of kept ECG ---


def _fulfil(batch: Batch, edge: EdgeBatchIn) -> None:
    if not edge.fulfils:
        return
    now = timezone.now()
    for request in EcgFetchRequest.objects.select_for_update().filter(
        request_id__in=edge.fulfils,
        patient_id=batch.patient_id,
        state=EcgFetchRequest.State.PENDING,
    ):
        landed = EcgSegment.objects.filter(
            batch=batch, start__lt=request.end, start__gte=request.start - LONGEST_STRIP
        ).count()
        request.state = (
            EcgFetchRequest.State.FULFILLED
            if landed
            else EcgFetchRequest.State.UNAVAILABLE
        )
        request.segment_count, request.fulfilled_at = landed, now
        request.save(update_fields=["state", "segment_count", "fulfilled_at"])


def request_ecg(
    *, patient: Patient, by: User, start: datetime, end: datetime
) -> EcgFetchRequest:
    return EcgFetchRequest.objects.create(
        request_id=uuid4(),
        patient=patient,
        requested_by=by,
        start=start,
        end=end,
        created_at=timezone.now(),
    )


def open_requests(gateway: Device) -> QuerySet[EcgFetchRequest]:
    return EcgFetchRequest.objects.filter(
        patient_id=gateway.patient_id, state=EcgFetchRequest.State.PENDING
    ).order_by("created_at")[:16]


def _answer(stored: Stored, edge: EdgeBatchIn) -> EdgeAnswer:
    return {
        **stored.answer,
        "features": len(edge.features),
        "outcomes": len(edge.outcomes),
    }


@dataclass(frozen=True)
class PatientSettings:
    """What a gateway needs to evaluate like the server: the patient's own limits."""

    threshold_overrides: dict
    spo2_scale: int

    @classmethod
    def of(cls, patient: Patient) -> PatientSettings:
        return cls(patient.threshold_overrides or {}, patient.spo2_scale)
