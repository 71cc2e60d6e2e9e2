"""From a processed batch to alert outcomes: which rule sees which result."""

from __future__ import annotations

from django.db.models import Max

from patients.models import Patient
from telemetry.models import Batch, EcgAnalysis, News2Score, ReadingRow

from . import edge, rules
from .services import Subject, apply_outcomes, device_reported, live_kinds


def evaluate_batch(
    batch: Batch,
    scores: list[News2Score],
    analyses: list[EcgAnalysis],
    observations: list[ReadingRow],
) -> None:
    """``observations`` are the batch's, in time order."""
    device, patient = batch.device, batch.patient
    device_reported(device=device, at=batch.received_at)
    device_outcomes = [
        *rules.battery_outcome(batch.battery_pct, batch.received_at),
        *rules.clock_outcome(batch.sent_at - batch.received_at, batch.received_at),
    ]
    patient_outcomes = [
        *_threshold_outcomes(observations, patient),
        *_news2_outcomes(scores, patient),
    ]
    for analysis in analyses:
        for outcome in _ecg_outcomes(analysis):
            target = (
                device_outcomes
                if outcome.kind == "ecg_signal_poor"
                else patient_outcomes
            )
            target.append(outcome)
    device_outcomes = edge.second_opinion(batch, device_outcomes)  # docs/edge.md
    patient_outcomes = edge.second_opinion(batch, patient_outcomes)
    on_device = Subject.of_device(device, patient)
    on_patient = Subject.of_patient(patient)
    live = live_kinds(on_device, on_patient)  # one query for both subjects
    # The caller (telemetry.processing.process_batch) holds the patient.
    apply_outcomes(
        subject=on_device,
        outcomes=device_outcomes,
        live=live[on_device.key],
        patient_held=True,
    )
    if patient.status == Patient.Status.ENROLLED:  # paused: stored, not alarmed
        apply_outcomes(
            subject=on_patient,
            outcomes=patient_outcomes,
            live=live[on_patient.key],
            patient_held=True,
        )


def _threshold_outcomes(
    observations: list[ReadingRow], patient: Patient
) -> list[rules.Outcome]:
    overrides = patient.threshold_overrides or {}
    outcomes: list[rules.Outcome] = []
    for obs in observations:
        if obs.value is not None:
            outcomes += rules.threshold_outcomes(
                obs.code, obs.value, obs.time, overrides
            )
    return outcomes


def _news2_outcomes(scores: list[News2Score], patient: Patient) -> list[rules.Outcome]:
    if not scores:
        return []
    newest = max(scores, key=lambda s: s.as_of)
    current = patient.news2_scores.aggregate(latest=Max("as_of"))["latest"]
    if current is not None and newest.as_of < current:
        return []  # late data re-scored the past; the present is unchanged
    return [
        rules.news2_outcome(
            total=newest.total,
            risk=newest.risk,
            subscores=newest.subscores,
            missing=newest.missing,
            at=newest.as_of,
        )
    ]


def _ecg_outcomes(analysis: EcgAnalysis) -> list[rules.Outcome]:
    end = analysis.start  # the rhythm describes the segment; time it at its start
    return rules.ecg_outcomes(
        rhythm=analysis.rhythm,
        usable=analysis.usable,
        quality=analysis.quality,
        heart_rate_bpm=analysis.heart_rate_bpm,
        at=end,
    )
