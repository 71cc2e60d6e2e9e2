"""POST /api/v1/telemetry/batches: the device upload contract."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import OperationalError
from django.test import override_settings
from psycopg_pool import PoolTimeout

from patients.auth import DeviceTokenAuthentication
from patients.services import revoke_device, rotate_device_token
from telemetry.models import Batch, EcgSegment, Observation
from telemetry.services import requeue_stale_batches

URL = "/api/v1/telemetry/batches"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


def obs(code="8867-4", value=72, unit="/min", time=None) -> dict:
    return {"code": code, "value": value, "unit": unit, "time": iso(time or now())}


def batch(**overrides) -> dict:
    body = {
        "batch_id": str(uuid.uuid4()),
        "sent_at": iso(now()),
        "battery_pct": 81,
        "observations": [obs(), obs("2708-6", 97, "%")],
        "ecg": [
            {
                "lead": "II",
                "fs_hz": 250,
                "start": iso(now() - timedelta(seconds=5)),
                "unit": "uV",
                "samples": [12, 15, 9],
            }
        ],
    }
    body.update(overrides)
    return body


def post(client, body, token, content_type="application/json"):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(URL, data=data, content_type=content_type, **headers)


def errors(response) -> dict[str, str]:
    assert response["Content-Type"] == "application/problem+json"
    return {e["path"]: e["message"] for e in response.json().get("errors", [])}


def test_it_stores_a_batch_and_answers_201(client, device):
    body = batch()
    response = post(client, body, device.token)
    assert response.status_code == 201
    assert response.json() == {
        "batch_id": body["batch_id"],
        "observations": 2,
        "ecg_segments": 1,
    }
    assert Observation.objects.filter(patient=device.device.patient).count() == 2
    segment = EcgSegment.objects.get()
    assert segment.samples_uv().tolist() == [12, 15, 9]
    assert segment.dtype == "<i2"


def test_it_updates_the_device_last_seen_and_battery(client, device):
    post(client, batch(battery_pct=42), device.token)
    device.device.refresh_from_db()
    assert device.device.battery_pct == 42
    assert now() - device.device.last_seen_at < timedelta(seconds=10)


def test_it_keeps_both_device_time_and_receive_time(client, device):
    sent = now() - timedelta(hours=2)
    post(client, batch(sent_at=iso(sent)), device.token)
    stored = Batch.objects.get()
    assert abs((stored.sent_at - sent).total_seconds()) < 0.001
    assert now() - stored.received_at < timedelta(seconds=10)


def test_the_same_batch_again_answers_200_and_stores_nothing_twice(client, device):
    body = batch()
    first = post(client, body, device.token)
    again = post(client, {**body, "sent_at": iso(now())}, device.token)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Batch.objects.count() == 1
    assert Observation.objects.count() == 2


def test_the_same_batch_id_with_another_body_is_a_conflict(client, device):
    body = batch()
    post(client, body, device.token)
    response = post(client, {**body, "battery_pct": 12}, device.token)
    assert response.status_code == 409
    assert "new UUID" in response.json()["detail"]
    assert Batch.objects.get().battery_pct == 81


def test_another_device_may_use_the_same_batch_id(client, device, other_device):
    body = batch()
    assert post(client, body, device.token).status_code == 201
    assert post(client, body, other_device.token).status_code == 201


def test_it_converts_fahrenheit_to_celsius(client, device):
    post(client, batch(observations=[obs("8310-5", 98.6, "[degF]")]), device.token)
    stored = Observation.objects.get()
    assert stored.unit == "Cel"
    assert stored.value == pytest.approx(37.0)


def test_it_stores_consciousness_as_a_letter(client, device):
    post(client, batch(observations=[obs("80288-4", "V", "{ACVPU}")]), device.token)
    stored = Observation.objects.get()
    assert (stored.value, stored.text) == (None, "V")


def test_it_accepts_millivolt_ecg_and_stores_microvolts(client, device):
    segment = {
        "lead": "I",
        "fs_hz": 500,
        "start": iso(now()),
        "unit": "mV",
        "samples": [0.012, -1.5, 2.25],
    }
    assert post(client, batch(ecg=[segment]), device.token).status_code == 201
    assert EcgSegment.objects.get().samples_uv().tolist() == [12, -1500, 2250]


def test_it_stores_a_minute_of_ecg_compactly(client, device):
    samples = (np.sin(np.arange(60 * 500) / 30) * 800).astype(int).tolist()
    segment = {
        "lead": "II",
        "fs_hz": 500,
        "start": iso(now()),
        "unit": "uV",
        "samples": samples,
    }
    assert post(client, batch(ecg=[segment]), device.token).status_code == 201
    stored = EcgSegment.objects.get()
    assert stored.samples_uv().tolist() == samples
    assert len(stored.data) < 2 * len(samples)


def test_an_empty_batch_is_a_heartbeat(client, device):
    response = post(
        client, batch(observations=[], ecg=[], battery_pct=55), device.token
    )
    assert response.status_code == 201
    device.device.refresh_from_db()
    assert device.device.battery_pct == 55


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ('{"batch_id": "x"', "(body)"),
        ("[]", "(body)"),
    ],
)
def test_malformed_json_is_a_400(client, device, raw, path):
    response = post(client, raw, device.token)
    assert response.status_code == 400
    assert path in errors(response)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused(client, device, literal):
    body = json.dumps(batch(observations=[obs()])).replace(
        '"value": 72', f'"value": {literal}'
    )
    response = post(client, body, device.token)
    assert response.status_code == 400
    assert "observations[0].value" in str(errors(response))
    assert Batch.objects.count() == 0


@pytest.mark.parametrize(
    ("make", "path", "words"),
    [
        (lambda: obs(value="72"), "observations[0].value", "must be a number"),
        (lambda: obs(code="1234-5"), "observations[0].code", "unknown code"),
        (lambda: obs(unit="bpm"), "observations[0].unit", "'/min'"),
        (lambda: obs(value=351), "observations[0].value", "not plausible"),
        (lambda: obs(value=-1), "observations[0].value", "not plausible"),
        (lambda: obs("2708-6", 101, "%"), "observations[0].value", "not plausible"),
        (lambda: obs("8310-5", 46, "Cel"), "observations[0].value", "not plausible"),
        (lambda: obs("8310-5", 24.9, "Cel"), "observations[0].value", "not plausible"),
        (
            lambda: obs("80288-4", "X", "{ACVPU}"),
            "observations[0].value",
            "A, C, V, P, U",
        ),
        (lambda: obs("3150-0", 10, "%"), "observations[0].value", "not plausible"),
        (
            lambda: obs(time=now() + timedelta(minutes=6)),
            "observations[0].time",
            "future",
        ),
        (lambda: obs(time=now() - timedelta(days=8)), "observations[0].time", "7 days"),
    ],
)
def test_implausible_observations_are_refused_with_their_path(
    client, device, make, path, words
):
    # Built when the test runs: a time "6 minutes ahead" must be ahead of now.
    response = post(client, batch(observations=[make()]), device.token)
    assert response.status_code == 400
    assert words in errors(response)[path]
    assert Observation.objects.count() == 0


def test_data_up_to_seven_days_old_is_accepted(client, device):
    old = obs(time=now() - timedelta(days=6, hours=23))
    assert post(client, batch(observations=[old]), device.token).status_code == 201


def test_a_time_without_a_zone_is_refused(client, device):
    body = batch()
    body["observations"][0]["time"] = "2026-11-21T09:00:00"
    assert (
        "timezone" in errors(post(client, body, device.token))["observations[0].time"]
    )


def test_diastolic_above_systolic_is_refused(client, device):
    t = now()
    pair = [obs("8480-6", 80, "mm[Hg]", t), obs("8462-4", 95, "mm[Hg]", t)]
    response = post(client, batch(observations=pair), device.token)
    assert "not below systolic" in errors(response)["observations[1].value"]


@pytest.mark.parametrize(
    ("segment", "path", "words"),
    [
        ({"fs_hz": 50}, "ecg[0].fs_hz", "100"),
        ({"lead": "V7"}, "ecg[0].lead", "'II'"),
        ({"samples": [1.5, 2]}, "ecg[0].samples", "integers"),
        ({"samples": [200_000]}, "ecg[0].samples", "100 mV"),
        ({"samples": [1] * (61 * 100), "fs_hz": 100}, "ecg[0].samples", "60 s"),
        ({"unit": "V"}, "ecg[0].unit", "uV"),
    ],
)
def test_bad_ecg_segments_are_refused(client, device, segment, path, words):
    base = {
        "lead": "II",
        "fs_hz": 250,
        "start": iso(now()),
        "unit": "uV",
        "samples": [1, 2],
    }
    response = post(client, batch(ecg=[{**base, **segment}]), device.token)
    assert response.status_code == 400
    assert words in errors(response)[path]


def test_unknown_fields_are_refused(client, device):
    response = post(client, batch(patient_id=7), device.token)
    assert "patient_id" in errors(response)


@pytest.mark.parametrize("token", [None, "rpmd_unknown"])
def test_a_missing_or_unknown_token_is_a_401(client, device, token):
    response = post(client, batch(), token)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response["Content-Type"] == "application/problem+json"


def test_a_revoked_token_fails_on_the_very_next_request(client, device):
    assert post(client, batch(), device.token).status_code == 201
    revoke_device(device=device.device)
    assert post(client, batch(), device.token).status_code == 401


def test_a_rotated_token_fails_and_the_new_one_works(client, device):
    new = rotate_device_token(device=device.device)
    assert post(client, batch(), device.token).status_code == 401
    assert post(client, batch(), new).status_code == 201


def test_a_clinician_token_cannot_upload(client, clinician):
    from patients.services import issue_clinician_token

    token = issue_clinician_token(user=clinician)
    response = client.post(
        URL,
        data=json.dumps(batch()),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert response.status_code == 401


def test_an_unassigned_device_is_refused(client, device):
    from patients.services import assign_device

    assign_device(device=device.device, patient=None)
    response = post(client, batch(), device.token)
    assert response.status_code == 403
    assert "assign" in response.json()["detail"]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml"],
)
def test_other_content_types_are_a_415(client, device, content_type):
    response = post(
        client, json.dumps(batch()), device.token, content_type=content_type
    )
    assert response.status_code == 415
    assert Batch.objects.count() == 0


def test_json_with_a_charset_is_accepted(client, device):
    response = post(client, batch(), device.token, "application/json; charset=utf-8")
    assert response.status_code == 201


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2000)
def test_a_body_over_the_limit_is_a_413(client, device):
    response = post(client, batch(observations=[obs()] * 30), device.token)
    assert response.status_code == 413
    assert "2000 bytes" in response.json()["detail"]


@override_settings(DEVICE_RATE="3/min")
def test_over_the_device_rate_is_a_429_with_retry_after(client, device, other_device):
    for _ in range(3):
        assert post(client, batch(), device.token).status_code == 201
    response = post(client, batch(), device.token)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert post(client, batch(), other_device.token).status_code == 201


def test_no_free_database_connection_is_a_503_that_stores_nothing(
    client, device, monkeypatch
):
    """Django raises this when its psycopg pool has no connection within the
    pool's timeout (measured at 1,000 devices in bench/alert_latency.py). The
    pool itself cannot be drained here: the test holds the only connection."""

    def pool_exhausted(*args, **kwargs):
        try:
            raise PoolTimeout("couldn't get a connection after 10.00 sec")
        except PoolTimeout as timeout:
            raise OperationalError(str(timeout)) from timeout

    monkeypatch.setattr(DeviceTokenAuthentication, "authenticate", pool_exhausted)
    response = post(client, batch(), device.token)
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert response.json()["type"].endswith("/busy")
    assert "send the same batch again" in response.json()["detail"]
    monkeypatch.undo()
    assert not Batch.objects.exists()


def test_other_database_errors_are_not_disguised_as_busy(client, device, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(DeviceTokenAuthentication, "authenticate", broken)
    client.raise_request_exception = False
    assert post(client, batch(), device.token).status_code == 500


def test_a_stored_batch_is_processed_after_the_commit(
    client, device, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        post(client, batch(), device.token)
    assert callbacks  # processing was queued after the commit, not before
    assert Batch.objects.get().state == Batch.State.PROCESSED


def test_the_sweep_requeues_a_batch_left_pending(client, device, monkeypatch):
    monkeypatch.setattr("telemetry.services._queue", lambda pk, urgent=False: None)
    post(client, batch(), device.token)
    stored = Batch.objects.get()
    assert stored.state == Batch.State.PENDING
    Batch.objects.update(queued_at=now() - timedelta(minutes=2))
    monkeypatch.undo()
    assert requeue_stale_batches() == 1
    stored.refresh_from_db()
    assert stored.state == Batch.State.PROCESSED
    assert stored.queue_count == 2


def test_two_sweeps_never_queue_one_batch_twice(
    client, device, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(
        "telemetry.services._queue", lambda pk, urgent=False: queued.append(pk)
    )
    with django_capture_on_commit_callbacks(execute=True):
        post(client, batch(), device.token)
    Batch.objects.update(queued_at=now() - timedelta(minutes=2))
    requeue_stale_batches()
    requeue_stale_batches()
    assert len(queued) == 2  # the upload's own, then one from the sweeps
    assert Batch.objects.get().queue_count == 2


def test_an_upload_sets_when_the_device_will_be_overdue(client, device, settings):
    settings.DEVICE_STALE_GRACE_S = 120
    post(client, batch(), device.token)
    device.device.refresh_from_db()
    expected = device.device.last_seen_at + timedelta(seconds=60 + 120)
    assert device.device.overdue_at == expected


def test_the_overdue_time_never_moves_back(client, device):
    from patients.models import Device

    later = now() + timedelta(hours=1)
    Device.objects.filter(pk=device.device.pk).update(overdue_at=later)
    post(client, batch(), device.token)
    device.device.refresh_from_db()
    assert device.device.overdue_at == later


def test_a_time_zone_offset_no_place_uses_is_refused(client, device):
    body = batch()
    body["sent_at"] = "2026-11-21T09:00:05-19:09"
    response = post(client, body, device.token)
    assert response.status_code == 400
    assert "offset" in errors(response)["sent_at"]


@pytest.mark.parametrize(
    ("table", "composite"),
    [
        ("telemetry_observation", "obs_patient_code_time"),
        ("telemetry_ecgsegment", "ecg_patient_start"),
    ],
)
def test_lookups_by_patient_have_one_index_not_two(db, table, composite):
    # The composite leads with the patient; a second index on patient_id alone
    # would only cost every stored row another insert.
    from django.db import connection

    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    indexes = {name: info["columns"] for name, info in found.items() if info["index"]}
    assert indexes[composite][0] == "patient_id"
    assert ["patient_id"] not in indexes.values()
