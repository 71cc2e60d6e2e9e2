"""QKD-keyed device sessions and sealed uploads: the device derives the same key,
and a replayed, stale or tampered envelope is refused with nothing stored."""

from __future__ import annotations

import base64
import json
import os
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem
from django.utils import timezone

from alerts.models import Alert
from security import kme, services
from security.models import AuditEvent, DeviceSession, QkdKey, QkdLink
from security.sealing import SessionContext, derive_session_key, seal
from telemetry.models import Batch
from tests.test_telemetry_ingest import batch

SESSIONS = "/api/v1/security/sessions"
SEALED = "/api/v1/telemetry/sealed-batches"


@pytest.fixture
def pools(device):
    kme.fill_pools(kme.default_link(), os.urandom(32 * 4))


def as_device(api, device):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {device.token}")
    return api


def open_session(api, device, body=None) -> dict:
    response = as_device(api, device).post(SESSIONS, body or {}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def device_key(api, device, session: dict, kem=None, kem_private=None) -> bytes:
    """What the device does: fetch the QKD key as slave SAE and derive the same key."""
    fetched = as_device(api, device).get(
        f"/api/v1/keys/{session['master_SAE_ID']}/dec_keys",
        {"key_ID": session["key_ID"]},
    )
    assert fetched.status_code == 200
    qkd_key = base64.b64decode(fetched.json()["keys"][0]["key"])
    context = SessionContext(
        device.device.serial, session["key_ID"], session["session_id"]
    )
    if kem_private is None:
        return derive_session_key(qkd_key, context)
    ciphertext = base64.b64decode(session["kem_ciphertext"])
    return derive_session_key(
        qkd_key,
        context,
        kem_secret=kem_private.decapsulate(ciphertext),
        kem_ciphertext=ciphertext,
    )


def envelope(key: bytes, device, session: dict, counter: int, body: dict) -> dict:
    context = SessionContext(
        device.device.serial, session["key_ID"], session["session_id"]
    )
    return {
        "session_id": session["session_id"],
        "counter": counter,
        "ciphertext": seal(key, context, counter, json.dumps(body).encode()),
    }


def send(api, device, sealed: dict):
    return as_device(api, device).post(SEALED, sealed, format="json")


def test_a_device_uploads_sealed_batches_over_a_qkd_session(api, device, pools):
    session = open_session(api, device)
    key = device_key(api, device, session)
    for counter in (1, 2, 5):
        assert (
            send(
                api, device, envelope(key, device, session, counter, batch())
            ).status_code
            == 201
        )
    assert Batch.objects.count() == 3
    assert DeviceSession.objects.get().last_counter == 5


def test_a_hybrid_session_mixes_in_ml_kem(api, device, pools):
    private = mlkem.MLKEM768PrivateKey.generate()
    public = base64.b64encode(private.public_key().public_bytes_raw()).decode()
    session = open_session(api, device, {"kem_public_key": public})
    assert session["hybrid"] is True
    key = device_key(api, device, session, kem_private=private)
    assert (
        send(api, device, envelope(key, device, session, 1, batch())).status_code == 201
    )
    assert Batch.objects.count() == 1


def test_the_qkd_key_alone_does_not_open_a_hybrid_session(api, device, pools):
    private = mlkem.MLKEM768PrivateKey.generate()
    public = base64.b64encode(private.public_key().public_bytes_raw()).decode()
    session = open_session(api, device, {"kem_public_key": public})
    qkd_only = device_key(api, device, session)
    response = send(api, device, envelope(qkd_only, device, session, 1, batch()))
    assert response.status_code == 400
    assert not Batch.objects.exists()


def test_a_replayed_envelope_is_refused_and_stores_nothing(api, device, pools):
    session = open_session(api, device)
    key = device_key(api, device, session)
    sealed = envelope(key, device, session, 1, batch())
    assert send(api, device, sealed).status_code == 201
    replay = send(api, device, sealed)
    assert replay.status_code == 409
    assert replay.json()["type"].endswith("replayed")
    assert Batch.objects.count() == 1


def test_a_stale_counter_is_refused(api, device, pools):
    session = open_session(api, device)
    key = device_key(api, device, session)
    send(api, device, envelope(key, device, session, 10, batch()))
    assert (
        send(api, device, envelope(key, device, session, 9, batch())).status_code == 409
    )
    assert Batch.objects.count() == 1


def test_a_tampered_envelope_is_refused_and_raises_an_integrity_alert(
    api, device, pools
):
    session = open_session(api, device)
    key = device_key(api, device, session)
    sealed = envelope(key, device, session, 1, batch())
    raw = bytearray(base64.b64decode(sealed["ciphertext"]))
    raw[5] ^= 0x01
    sealed["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    response = send(api, device, sealed)
    assert response.status_code == 400
    assert not Batch.objects.exists()
    assert DeviceSession.objects.get().last_counter == 0
    assert Alert.objects.get().kind == "integrity_failure"


def test_an_envelope_moved_to_another_counter_does_not_open(api, device, pools):
    session = open_session(api, device)
    key = device_key(api, device, session)
    sealed = envelope(key, device, session, 1, batch())
    sealed["counter"] = 2
    assert send(api, device, sealed).status_code == 400


def test_another_device_cannot_use_the_session(api, device, other_device, pools):
    session = open_session(api, device)
    key = device_key(api, device, session)
    response = send(api, other_device, envelope(key, device, session, 1, batch()))
    assert response.status_code == 409
    assert not Batch.objects.exists()


def test_an_expired_session_must_be_renewed(api, device, pools):
    session = open_session(api, device)
    key = device_key(api, device, session)
    DeviceSession.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = send(api, device, envelope(key, device, session, 1, batch()))
    assert response.status_code == 409
    assert "open a new session" in response.json()["detail"]


def test_a_session_that_reached_its_batch_limit_must_be_renewed(api, device, pools):
    session = open_session(api, device)
    key = device_key(api, device, session)
    DeviceSession.objects.update(max_batches=2)
    for counter in (1, 2):
        response = send(api, device, envelope(key, device, session, counter, batch()))
        assert response.status_code == 201
    response = send(api, device, envelope(key, device, session, 3, batch()))
    assert response.status_code == 409
    assert "open a new session" in response.json()["detail"]
    assert Batch.objects.count() == 2


def test_an_invalid_batch_inside_a_valid_envelope_does_not_use_up_the_counter(
    api, device, pools
):
    session = open_session(api, device)
    key = device_key(api, device, session)
    bad = envelope(key, device, session, 1, batch(battery_pct=500))
    assert send(api, device, bad).status_code == 400
    assert DeviceSession.objects.get().last_counter == 0
    assert (
        send(api, device, envelope(key, device, session, 1, batch())).status_code == 201
    )


def test_no_session_opens_while_the_link_is_compromised(api, device, pools):
    QkdLink.objects.update(status=QkdLink.Status.COMPROMISED)
    response = as_device(api, device).post(SESSIONS, {}, format="json")
    assert response.status_code == 503
    assert "keep uploading over TLS" in response.json()["detail"]
    assert "Retry-After" in response


def test_the_session_key_is_stored_encrypted(api, device, pools):
    session = open_session(api, device)
    key = device_key(api, device, session)
    assert key not in bytes(DeviceSession.objects.get().sealed_session_key)


def killed(*args, **kwargs):
    raise ConnectionError("process killed")


def test_a_session_that_was_not_recorded_leaves_its_key_in_the_pool(
    api, device, pools, monkeypatch
):
    # Killed after taking the key but before its audit row: the key must not be
    # stranded as delivered with no session naming it.
    monkeypatch.setattr(services, "record_event", killed)
    with pytest.raises(ConnectionError):
        as_device(api, device).post(SESSIONS, {}, format="json")
    assert not DeviceSession.objects.exists()
    assert QkdKey.objects.filter(delivered_to_master_at__isnull=True).count() == 4
    monkeypatch.undo()
    assert open_session(api, device)["key_ID"]


def test_a_tamper_alarm_commits_with_its_audit_row(api, device, pools, monkeypatch):
    session = open_session(api, device)
    key = device_key(api, device, session)
    sealed = envelope(key, device, session, 1, batch())
    sealed["ciphertext"] = sealed["ciphertext"][:-4] + "AAAA"
    monkeypatch.setattr(services, "apply_outcomes", killed)
    with pytest.raises(ConnectionError):
        send(api, device, sealed)
    assert not AuditEvent.objects.filter(action="qkd.envelope_rejected").exists()
