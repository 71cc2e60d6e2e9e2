"""Live streams: alerts reach the right clinicians only, updates reach watchers."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from alerts import services
from alerts.rules import Finding
from alerts.services import Subject
from patients.services import issue_clinician_token
from rpm.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def connect(user, path="/ws/alerts/") -> WebsocketCommunicator:
    token = await database_sync_to_async(issue_clinician_token)(user=user)
    communicator = WebsocketCommunicator(
        application,
        path,
        headers=[
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
            (b"authorization", f"Token {token}".encode()),
        ],
    )
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


@database_sync_to_async
def raise_alert(patient, kind="news2", priority="high"):
    return services.apply_outcomes(
        subject=Subject.of_patient(patient),
        outcomes=[Finding(kind, priority, timezone.now(), "found", {})],
    )[0]


async def test_an_alert_reaches_its_clinician_and_not_another_team(
    clinician, other_clinician, patient
):
    mine = await connect(clinician)
    theirs = await connect(other_clinician)
    try:
        hello = await mine.receive_json_from(timeout=10)
        await theirs.receive_json_from(timeout=10)
        alert = await raise_alert(patient)
        event = await mine.receive_json_from(timeout=5)
        assert (event["type"], event["event"], event["alert"]["id"]) == (
            "alert",
            "raised",
            alert.pk,
        )
        assert event["seq"] > hello["max_seq"]
        assert await theirs.receive_nothing(timeout=0.5)
    finally:
        await mine.disconnect()
        await theirs.disconnect()


async def test_the_patient_stream_refuses_another_teams_patient(
    other_clinician, patient
):
    communicator = await connect(other_clinician, f"/ws/patients/{patient.pk}/")
    assert await communicator.receive_output(timeout=10) == {
        "type": "websocket.close",
        "code": 4403,
    }
    await communicator.disconnect()


async def test_the_patient_stream_carries_processed_vitals(clinician, device, patient):
    communicator = await connect(clinician, f"/ws/patients/{patient.pk}/")
    try:
        assert (await communicator.receive_json_from(timeout=10))["type"] == "hello"
        await database_sync_to_async(upload_and_process)(device)
        update = await communicator.receive_json_from(timeout=5)
        assert update["type"] == "patient.update"
        assert {v["code"] for v in update["vitals"]} == {"8867-4", "2708-6"}
        assert update["news2"][0]["partial"] is True
    finally:
        await communicator.disconnect()


def upload_and_process(device) -> None:
    import json

    from telemetry.contract import fingerprint, parse_batch
    from telemetry.models import Batch
    from telemetry.processing import process_batch
    from telemetry.services import record_batch
    from tests.test_telemetry_ingest import batch

    parsed, _ = parse_batch(json.dumps(batch(ecg=[])).encode())
    record_batch(device=device.device, batch=parsed, fingerprint=fingerprint(parsed))
    process_batch(Batch.objects.get().pk)


async def test_a_pong_tells_the_newest_event_number_so_a_dropped_push_is_found(
    clinician, patient
):
    """The channel layer drops pushes to a full channel. The pong's max_seq lets
    the client see that events were numbered past what it has caught up to, and
    the catch-up from its watermark returns the alert it never received."""
    communicator = await connect(clinician)
    try:
        hello = await communicator.receive_json_from(timeout=10)
        await communicator.send_json_to({"type": "ping", "id": 1})
        assert await communicator.receive_json_from(timeout=10) == {
            "type": "pong",
            "id": 1,
            "max_seq": hello["max_seq"],
        }
        await communicator.disconnect()  # as good as a dropped push
        alert = await raise_alert(patient)
        communicator = await connect(clinician)
        await communicator.receive_json_from(timeout=10)  # hello
        await communicator.send_json_to({"type": "ping", "id": 2})
        pong = await communicator.receive_json_from(timeout=10)
        assert pong["max_seq"] == alert.last_seq > hello["max_seq"]
        caught_up = await database_sync_to_async(catch_up)(clinician, hello["max_seq"])
        assert [a["id"] for a in caught_up["results"]] == [alert.pk]
        assert caught_up["max_seq"] == pong["max_seq"]
    finally:
        await communicator.disconnect()


def catch_up(user, after: int) -> dict:
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user)
    response = api.get(f"/api/v1/alerts/?after_seq={after}")
    assert response.status_code == 200
    return response.json()
