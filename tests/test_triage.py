"""Triage at ingest: which batches go to the urgent queue, and that they do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from telemetry import services
from telemetry.contract import Reading
from telemetry.models import Batch

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def reading(code: str, value: float | None, unit: str, text: str = "") -> Reading:
    return Reading(code, value, text, unit, NOW)


ROUTINE = [
    reading("8867-4", 72, "/min"),
    reading("2708-6", 97, "%"),
    reading("9279-1", 15, "/min"),
    reading("8310-5", 37.0, "Cel"),
    reading("8480-6", 125, "mm[Hg]"),
    reading("80288-4", None, "{ACVPU}", "A"),
    reading("3150-0", 28, "%"),  # on oxygen: a state, not news
]


@pytest.mark.django_db
def test_routine_readings_take_the_routine_queue(device):
    assert not services._urgent(device.device, ROUTINE)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "alarming",
    [
        reading("8310-5", 39.8, "Cel"),  # beyond the temperature threshold
        reading("8867-4", 35, "/min"),  # beyond the heart-rate threshold
        reading("9279-1", 22, "/min"),  # 2 NEWS2 points, below any threshold
        reading("2708-6", 93, "%"),  # 2 points on SpO2 scale 1
        reading("80288-4", None, "{ACVPU}", "C"),  # new confusion: 3 points
    ],
)
def test_one_alarming_reading_makes_the_batch_urgent(device, alarming):
    assert services._urgent(device.device, [*ROUTINE, alarming])


@pytest.mark.django_db
def test_the_patients_own_thresholds_count(device):
    patient = device.device.patient
    patient.threshold_overrides = {"8867-4": {"high": 75}}
    patient.save()
    assert services._urgent(device.device, [reading("8867-4", 80, "/min")])


@pytest.mark.django_db
def test_spo2_is_scored_on_the_patients_own_scale(device, clinician):
    low_for_most = [reading("2708-6", 91, "%")]  # 3 points on scale 1, above 90
    assert services._urgent(device.device, low_for_most)
    patient = device.device.patient
    patient.spo2_scale = 2  # prescribed 88-92 %: 91 on air is on target
    patient.spo2_scale_set_by = clinician
    patient.save()
    assert not services._urgent(device.device, low_for_most)


def test_an_urgent_batch_is_queued_on_the_urgent_queue(monkeypatch, settings):
    from telemetry.tasks import process_batch

    sent = []
    monkeypatch.setattr(
        process_batch, "apply_async", lambda args, **kw: sent.append((args, kw))
    )
    monkeypatch.setattr(process_batch, "delay", lambda *args: sent.append((args, {})))
    services._queue(1, urgent=True)
    services._queue(2)
    assert sent == [((1,), {"queue": settings.URGENT_TASK_QUEUE}), ((2,), {})]


@pytest.fixture
def queued(monkeypatch):
    """What went to the task queue; nothing is processed from it."""
    sent: list[tuple[int, bool]] = []
    monkeypatch.setattr(
        services, "_queue", lambda pk, urgent=False: sent.append((pk, urgent))
    )
    return sent


@pytest.mark.django_db
def test_the_sweep_requeues_an_urgent_batch_on_the_urgent_queue(client, device, queued):
    """A fever whose task was lost (a Redis restart, say) must not wait behind the
    backlog when the sweep finds it: its triage is stored with the batch."""
    post(client, device, value=37.0)  # a routine batch,
    post(client, device, value=39.8)  # then an alarming one
    routine, fever = Batch.objects.order_by("pk")
    assert (routine.urgent, fever.urgent) == (False, True)
    Batch.objects.update(queued_at=timezone.now() - timedelta(minutes=2))
    assert services.requeue_stale_batches() == 2
    assert queued == [(fever.pk, True), (routine.pk, False)]  # the fever first


def post(client, device, *, value: float) -> None:
    """Upload one temperature, now."""
    now = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "batch_id": str(uuid.uuid4()),
        "sent_at": now,
        "observations": [
            {"code": "8310-5", "value": value, "unit": "Cel", "time": now}
        ],
    }
    answer = client.post(
        "/api/v1/telemetry/batches",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {device.token}",
    )
    assert answer.status_code == 201, answer.content
