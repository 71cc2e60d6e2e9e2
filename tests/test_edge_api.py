"""The server side of the edge gateway: edge batches, the dedup of edge and server
alerts, and clinicians' fetches of ECG a gateway kept."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from alerts.models import Alert
from patients.models import Device
from patients.services import provision_device
from telemetry.models import EcgFetchRequest, EcgSegment, EdgeEcgFeatures
from telemetry.simulator.ecg import EcgStream, Rhythm

EDGE = "/api/v1/telemetry/edge-batches"
REQUESTS = "/api/v1/telemetry/edge-requests"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def strip(rhythm: str, start: datetime, seconds: float = 10.0, seed: int = 1) -> dict:
    mv = EcgStream(250, np.random.default_rng(seed)).segment(
        0.0, seconds, Rhythm(rhythm, 105 if rhythm == "af" else 70), "clean"
    )
    samples = np.rint(mv * 1000).astype(int).tolist()
    return {
        "lead": "II",
        "fs_hz": 250,
        "start": iso(start),
        "unit": "uV",
        "samples": samples,
    }


def finding(kind: str, at: datetime, priority: str = "medium") -> dict:
    return {
        "type": "finding",
        "kind": kind,
        "at": iso(at),
        "priority": priority,
        "message": f"{kind} seen on the box",
        "evidence": {"rule": "test"},
    }


def clear(kind: str, at: datetime) -> dict:
    return {"type": "clear", "kind": kind, "at": iso(at)}


def edge_batch(**parts) -> dict:
    return {
        "batch_id": str(uuid.uuid4()),
        "sent_at": iso(datetime.now(UTC)),
        "policy": "edge-first",
        **parts,
    }


def post(client, token: str, body: dict, url: str = EDGE):
    return client.post(
        url,
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def open_alerts(kind: str) -> list[Alert]:
    return list(Alert.objects.filter(kind=kind).exclude(state=Alert.State.RESOLVED))


# Transactional: processing is queued after the commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def test_an_edge_finding_becomes_an_alert_marked_as_from_the_edge(client, device):
    at = datetime.now(UTC) - timedelta(seconds=30)
    body = edge_batch(outcomes=[finding("af", at)], ecg=[strip("af", at)])
    answer = post(client, device.token, body)
    assert answer.status_code == 201, answer.json()
    [alert] = open_alerts("af")
    assert alert.evidence["source"] == "edge"
    assert alert.evidence["gateway"] == "HUB-1"
    assert EcgSegment.objects.filter(pk=alert.evidence["segment_id"]).exists()


def test_the_same_edge_batch_again_raises_nothing_twice(client, device):
    body = edge_batch(outcomes=[finding("temperature_high", datetime.now(UTC))])
    assert post(client, device.token, body).status_code == 201
    assert post(client, device.token, body).status_code == 200
    [alert] = open_alerts("temperature_high")
    assert alert.occurrences == 1


def test_a_server_finding_for_the_same_condition_updates_the_edge_alert(client, device):
    first = datetime.now(UTC) - timedelta(seconds=20)
    post(
        client, device.token, edge_batch(outcomes=[finding("temperature_high", first)])
    )
    direct = {
        "batch_id": str(uuid.uuid4()),
        "sent_at": iso(datetime.now(UTC)),
        "observations": [
            {
                "code": "8310-5",
                "value": 40.2,
                "unit": "Cel",
                "time": iso(datetime.now(UTC)),
            }
        ],
    }
    answer = post(client, device.token, direct, url="/api/v1/telemetry/batches")
    assert answer.status_code == 201
    [alert] = open_alerts("temperature_high")
    assert alert.occurrences == 2
    assert "source" not in alert.evidence  # the latest finding was the server's


def test_a_normal_strip_the_gateway_forwarded_does_not_resolve_its_alert(
    client, device
):
    start = datetime.now(UTC) - timedelta(seconds=60)
    post(client, device.token, edge_batch(outcomes=[finding("af", start)]))
    later = start + timedelta(seconds=20)
    # The periodic sample strip, in sinus rhythm: the server's own analysis of it
    # would clear AF, but it saw one window; the gateway saw them all.
    sample = edge_batch(ecg=[strip("sinus", later)])
    assert post(client, device.token, sample).status_code == 201
    assert [a.kind for a in open_alerts("af")] == ["af"]
    post(client, device.token, edge_batch(outcomes=[clear("af", later)]))
    assert open_alerts("af") == []


def test_a_strip_the_gateway_already_judged_raises_no_duplicate_later(client, device):
    start = datetime.now(UTC) - timedelta(seconds=60)
    end = start + timedelta(seconds=10)
    outcomes = [finding("af", start), clear("af", end)]
    post(client, device.token, edge_batch(outcomes=outcomes))
    assert open_alerts("af") == []
    # The evidence strip arrives afterwards (the data lane): the server agrees.
    post(client, device.token, edge_batch(ecg=[strip("af", start)]))
    assert Alert.objects.filter(kind="af").count() == 1


def test_a_server_finding_the_gateway_did_not_report_still_raises(client, device):
    start = datetime.now(UTC) - timedelta(seconds=60)
    post(client, device.token, edge_batch(ecg=[strip("af", start, seed=3)]))
    [alert] = open_alerts("af")
    assert "source" not in alert.evidence


def test_only_a_gateway_may_upload_edge_batches(client, patient):
    patch = provision_device(
        serial="PATCH-1", kind=Device.Kind.ECG_PATCH, patient=patient
    )
    answer = post(client, patch.token, edge_batch())
    assert answer.status_code == 403


def test_a_kind_the_gateway_does_not_own_is_refused_with_its_path(client, device):
    body = edge_batch(outcomes=[finding("battery_low", datetime.now(UTC))])
    answer = post(client, device.token, body)
    assert answer.status_code == 400
    paths = [e["path"] for e in answer.json()["errors"]]
    assert paths == ["outcomes[0].kind"]


def test_features_are_stored_without_raw_samples(client, device):
    at = datetime.now(UTC) - timedelta(seconds=10)
    features = {
        "lead": "II",
        "fs_hz": 250,
        "start": iso(at),
        "duration_s": 10.0,
        "rhythm": "sinus",
        "usable": True,
        "quality": 0.93,
        "beat_count": 12,
        "heart_rate_bpm": 71.5,
        "qtc_ms": 402.0,
    }
    assert (
        post(client, device.token, edge_batch(features=[features])).status_code == 201
    )
    [stored] = EdgeEcgFeatures.objects.all()
    assert (stored.rhythm, stored.heart_rate_bpm) == ("sinus", 71.5)
    assert EcgSegment.objects.count() == 0


# --- fetching kept ECG ---


def ask(api, user, patient_id: int, start: datetime, end: datetime):
    api.force_authenticate(user)
    return api.post(
        f"/api/v1/patients/{patient_id}/ecg-requests",
        {"start": iso(start), "end": iso(end)},
        format="json",
    )


def test_a_clinician_fetch_reaches_the_gateway_and_is_fulfilled(
    client, api, clinician, patient, device
):
    start = datetime.now(UTC) - timedelta(minutes=10)
    made = ask(api, clinician, patient.pk, start, start + timedelta(seconds=20))
    assert made.status_code == 201
    assert made.json()["state"] == "pending"
    polled = client.get(REQUESTS, HTTP_AUTHORIZATION=f"Bearer {device.token}").json()
    [request] = polled["requests"]
    assert polled["patient"]["spo2_scale"] == 1
    answer = edge_batch(
        ecg=[strip("sinus", start), strip("sinus", start + timedelta(seconds=10))],
        fulfils=[request["request_id"]],
    )
    assert post(client, device.token, answer).status_code == 201
    status = api.get(f"/api/v1/patients/{patient.pk}/ecg-requests/{made.json()['id']}")
    assert status.json()["state"] == "fulfilled"
    assert status.json()["segment_count"] == 2


def test_a_fetch_the_gateway_cannot_answer_says_so(
    client, api, clinician, patient, device
):
    start = datetime.now(UTC) - timedelta(days=3)
    made = ask(api, clinician, patient.pk, start, start + timedelta(seconds=20))
    fetch = EcgFetchRequest.objects.get(pk=made.json()["id"])
    post(client, device.token, edge_batch(fulfils=[str(fetch.request_id)]))
    fetch.refresh_from_db()
    assert fetch.state == "unavailable"


def test_another_teams_clinician_cannot_ask_for_the_patients_ecg(
    api, other_clinician, patient
):
    start = datetime.now(UTC) - timedelta(minutes=5)
    answer = ask(api, other_clinician, patient.pk, start, start + timedelta(minutes=1))
    assert answer.status_code == 404
    assert not EcgFetchRequest.objects.exists()


def test_a_fetch_longer_than_an_hour_is_refused(api, clinician, patient):
    start = datetime.now(UTC) - timedelta(hours=3)
    answer = ask(api, clinician, patient.pk, start, start + timedelta(hours=2))
    assert answer.status_code == 400
