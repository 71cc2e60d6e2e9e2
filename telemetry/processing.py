"""What happens to a stored batch: ECG analysis and NEWS2 scoring, then it is done.

Every step is idempotent (it checks what is already done), so a task that runs
twice, or a batch queued again by the sweep, changes nothing the second time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from alerts.evaluation import evaluate_batch
from alerts.services import hold_patient
from alerts.stream import send_to_patient_watchers
from patients.models import Device, Patient

from . import contract as c
from .models import (
    Batch,
    EcgAnalysis,
    EcgSegment,
    News2Score,
    Observation,
    ReadingRow,
)
from .scoring import FreshnessWindows, Reading, latest_inputs, news2

log = logging.getLogger(__name__)


def process_batch(batch_pk: int) -> bool:
    """Process one batch; False when there was nothing to do."""
    batch = (
        # "edge" too: whether it came through a gateway, without a query of its own
        Batch.objects.select_related("device", "patient", "edge")
        .filter(pk=batch_pk, state=Batch.State.PENDING)
        .first()
    )
    if batch is None:
        return False
    analyses: list[EcgAnalysis] = []
    if batch.ecg_count:
        pending = batch.ecg_segments.filter(state=EcgSegment.State.PENDING)
        for segment_pk in pending.values_list("pk", flat=True):
            analyse_segment(segment_pk)
        # All of the batch's analyses, also those a crashed earlier run stored.
        analyses = list(
            EcgAnalysis.objects.filter(segment__batch=batch).order_by("start")
        )
    observations = ReadingRow.of_batch(batch)
    # Scores, alert outcomes and the PROCESSED mark commit together: a worker
    # that dies between them leaves none, so the sweep's rerun cannot announce
    # an alarm twice, nor raise again one that a later batch has since cleared.
    # (One commit instead of three, too.)
    with transaction.atomic():
        # One scoring and evaluation per patient at a time; then the claim: a
        # second worker on this batch waits at the lock and finds it processed.
        hold_patient(batch.patient_id)
        claimed = Batch.objects.filter(pk=batch_pk, state=Batch.State.PENDING).update(
            state=Batch.State.PROCESSED, processed_at=timezone.now()
        )
        if not claimed:
            return False
        scores = rescore_for_batch(batch, observations)
        evaluate_batch(batch, scores, analyses, observations)
    publish_patient_update(batch, observations, scores, analyses)
    return True


def analyse_segment(segment_pk: int) -> EcgAnalysis | None:
    segment = EcgSegment.objects.filter(
        pk=segment_pk, state=EcgSegment.State.PENDING
    ).first()
    if segment is None:
        return None
    if segment.duration_s < 5.0:
        EcgSegment.objects.filter(pk=segment_pk).update(
            state=EcgSegment.State.TOO_SHORT
        )
        return None
    from .analysis import analyze_ecg  # NeuroKit2 is heavy: only workers import it

    features = analyze_ecg(segment.samples_mv(), float(segment.fs_hz))
    with transaction.atomic():
        analysis, _ = EcgAnalysis.objects.get_or_create(
            segment=segment,
            defaults={
                "patient_id": segment.patient_id,
                "start": segment.start,
                "rhythm": features.rhythm,
                "usable": features.usable,
                "quality": features.quality,
                "heart_rate_bpm": features.heart_rate_bpm,
                "beat_count": len(features.r_peaks),
                "features": features.to_dict(),
            },
        )
        EcgSegment.objects.filter(pk=segment_pk).update(state=EcgSegment.State.ANALYSED)
    return analysis


def rescore_for_batch(batch: Batch, observations: list[ReadingRow]) -> list[News2Score]:
    """Score the patient as of the batch's newest vital sign, and re-score the
    scores its (possibly late) readings could have changed."""
    times = [obs.time for obs in observations if obs.code in c.SCORED_CODES]
    if not times:
        return []
    patient = batch.patient
    window_end = min(times) + timedelta(seconds=settings.NEWS2_SPOT_WINDOW_S)
    affected = set(
        patient.news2_scores.filter(
            as_of__gte=min(times), as_of__lte=window_end
        ).values_list("as_of", flat=True)
    )
    # Under the patient lock (process_batch) a moment inside the window with no
    # score has none: its score is new, and has no observations to replace.
    newest = max(times)
    fresh = newest not in affected and newest <= window_end
    return [
        score_patient(patient=patient, as_of=t, new=fresh and t == newest)
        for t in sorted(affected | {newest})
    ]


def score_patient(
    *, patient: Patient, as_of: datetime, new: bool = False
) -> News2Score:
    newest = _latest_per_code(patient, as_of)
    latest = {
        name: max(
            (newest[code] for code in codes if code in newest),
            key=lambda obs: (obs.time, obs.pk),
            default=None,
        )
        for name, codes in c.NEWS2_CODES.items()
    }
    readings = {name: _reading(name, obs) for name, obs in latest.items() if obs}
    fresh = latest_inputs(readings, now=as_of, windows=_windows())
    score = news2(**fresh.inputs, spo2_scale=patient.spo2_scale)
    used = [obs for name, obs in latest.items() if obs and name not in fresh.stale]
    return _store(patient, as_of, score, used, new)


def _latest_per_code(patient: Patient, as_of: datetime) -> dict[str, Observation]:
    """The newest observation at or before ``as_of`` of every scored code, each
    annotated with its device's expected interval. On PostgreSQL one query: a
    LATERAL index seek per code (DISTINCT ON would read the whole history)."""
    codes = sorted(c.SCORED_CODES)
    if connection.vendor == "postgresql":
        table = Observation._meta.db_table
        device = Device._meta.db_table
        rows = Observation.objects.raw(
            f"SELECT o.*, d.expected_interval_s AS device_interval_s "  # noqa: S608
            f"FROM unnest(%s::varchar[]) AS wanted(code) "
            f"CROSS JOIN LATERAL (SELECT * FROM {table} AS x "
            f"WHERE x.patient_id = %s AND x.code = wanted.code AND x.time <= %s "
            f"ORDER BY x.time DESC, x.id DESC LIMIT 1) AS o "
            f"JOIN {device} AS d ON d.id = o.device_id",
            [codes, patient.pk, as_of],
        )
        return {obs.code: obs for obs in rows}
    found = {}
    for code in codes:
        obs = (
            Observation.objects.filter(patient=patient, code=code, time__lte=as_of)
            .annotate(device_interval_s=F("device__expected_interval_s"))
            .order_by("-time", "-pk")
            .first()
        )
        if obs is not None:
            found[code] = obs
    return found


def _reading(name: str, obs: Observation) -> Reading:
    streaming = obs.device_interval_s <= settings.NEWS2_STREAMING_INTERVAL_S
    value = c.news2_value(name, obs.value, obs.text, obs.unit)
    return Reading(value=value, time=obs.time, continuous=streaming)


def _windows() -> FreshnessWindows:
    return FreshnessWindows(
        spot=timedelta(seconds=settings.NEWS2_SPOT_WINDOW_S),
        continuous=timedelta(seconds=settings.NEWS2_CONTINUOUS_WINDOW_S),
    )


def _store(
    patient: Patient, as_of: datetime, score, used: list[Observation], new: bool
) -> News2Score:
    fields = {
        "total": score.total,
        "risk": score.risk,
        "partial": score.partial,
        "subscores": dict(score.subscores),
        "missing": list(score.missing),
        "spo2_scale": score.spo2_scale,
        "computed_at": timezone.now(),
    }
    # One INSERT ... ON CONFLICT DO UPDATE: a re-score (late data, a task run
    # twice, two workers at once) overwrites the moment's score in place.
    (stored,) = News2Score.objects.bulk_create(
        [News2Score(patient=patient, as_of=as_of, **fields)],
        update_conflicts=True,
        unique_fields=["patient", "as_of"],
        update_fields=list(fields),
    )
    if new:  # nothing linked yet: skip set()'s read of the current links
        link = News2Score.observations.through
        link.objects.bulk_create(
            link(news2score_id=stored.pk, observation_id=obs.pk) for obs in used
        )
    else:
        stored.observations.set(used)
    return stored


def publish_patient_update(
    batch: Batch,
    observations: list[ReadingRow],
    scores: list[News2Score],
    analyses: list[EcgAnalysis],
) -> None:
    """Tell the patient's open pages what is new (after the commit; the REST API
    remains the record)."""
    vitals = [
        {
            "code": o.code,
            "value": o.value,
            "text": o.text,
            "unit": o.unit,
            "time": o.time.isoformat(),
        }
        for o in observations
    ]
    payload = {
        "type": "patient.update",
        "patient_id": batch.patient_id,
        "vitals": vitals,
        "news2": [_score_dict(s) for s in scores],
        "ecg": [
            {"segment_id": a.segment_id, "start": a.start.isoformat(), **a.features}
            for a in analyses
        ],
    }
    transaction.on_commit(lambda: send_to_patient_watchers(batch.patient_id, payload))


def _score_dict(score: News2Score) -> dict:
    return {
        "as_of": score.as_of.isoformat(),
        "total": score.total,
        "risk": score.risk,
        "partial": score.partial,
        "subscores": score.subscores,
        "missing": score.missing,
    }
