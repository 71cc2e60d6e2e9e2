"""The key manager's ETSI GS QKD 014 interface: status, enc_keys, dec_keys."""

from __future__ import annotations

import base64
import os

import pytest

from patients.credentials import issue_token
from security import kme, services
from security.models import QkdKey, QkdLink, Sae


@pytest.fixture
def master(db):
    """The ingest server's SAE, with a credential of its own."""
    token = issue_token("rpms_")
    sae = kme.server_sae()
    sae.credential_digest = token.digest
    sae.save()
    return sae, token.raw


@pytest.fixture
def filled(master, device, other_device):
    link = kme.default_link()
    kme.fill_pools(link, os.urandom(32 * 8))
    return link


def get(api, url, token, **params):
    return api.get(url, params, HTTP_AUTHORIZATION=f"Bearer {token}")


def post(api, url, token, body):
    return api.post(url, body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")


def slave_id(device) -> str:
    return kme.device_sae(device.device).sae_id


def test_status_reports_the_standard_fields(api, master, filled, device):
    response = get(api, f"/api/v1/keys/{slave_id(device)}/status", master[1])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "source_KME_ID",
        "target_KME_ID",
        "master_SAE_ID",
        "slave_SAE_ID",
        "key_size",
        "stored_key_count",
        "max_key_count",
        "max_key_per_request",
        "max_key_size",
        "min_key_size",
        "max_SAE_ID_count",
    }
    assert body["stored_key_count"] == 4
    assert body["key_size"] == 256


def test_the_pools_are_filled_evenly(master, filled, device, other_device):
    counts = {
        s: QkdKey.objects.filter(slave_sae=s).count()
        for s in (slave_id(device), slave_id(other_device))
    }
    assert set(counts.values()) == {4}


def test_a_key_goes_to_the_master_and_then_once_to_the_named_slave(
    api, master, filled, device
):
    enc = post(
        api, f"/api/v1/keys/{slave_id(device)}/enc_keys", master[1], {"number": 2}
    )
    assert enc.status_code == 200
    keys = enc.json()["keys"]
    assert len(keys) == 2
    assert all(len(base64.b64decode(k["key"])) == 32 for k in keys)
    ids = [{"key_ID": k["key_ID"]} for k in keys]
    dec = post(
        api, f"/api/v1/keys/{master[0].sae_id}/dec_keys", device.token, {"key_IDs": ids}
    )
    assert dec.status_code == 200
    assert dec.json()["keys"] == keys
    again = post(
        api, f"/api/v1/keys/{master[0].sae_id}/dec_keys", device.token, {"key_IDs": ids}
    )
    assert again.status_code == 400
    assert again.json()["message"] == "one or more keys specified are not found on KME"


def test_get_forms_work_too(api, master, filled, device):
    enc = get(api, f"/api/v1/keys/{slave_id(device)}/enc_keys", master[1], number=1)
    key = enc.json()["keys"][0]
    dec = get(
        api,
        f"/api/v1/keys/{master[0].sae_id}/dec_keys",
        device.token,
        key_ID=key["key_ID"],
    )
    assert dec.json()["keys"] == [key]


def test_a_slave_not_named_in_enc_keys_gets_401_with_no_body(
    api, master, filled, device, other_device
):
    enc = post(api, f"/api/v1/keys/{slave_id(device)}/enc_keys", master[1], {})
    key_id = enc.json()["keys"][0]["key_ID"]
    stolen = post(
        api,
        f"/api/v1/keys/{master[0].sae_id}/dec_keys",
        other_device.token,
        {"key_IDs": [{"key_ID": key_id}]},
    )
    assert stolen.status_code == 401
    assert stolen.content == b""
    assert QkdKey.objects.filter(key_id=key_id).exists()


def test_anonymous_callers_get_401_with_no_body(api, filled, device):
    response = api.get(f"/api/v1/keys/{slave_id(device)}/status")
    assert response.status_code == 401
    assert response.content == b""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"size": 100}, "size shall be a multiple of 8"),
        (
            {"extension_mandatory": [{"route": "fast"}]},
            "not all extension_mandatory parameters are supported",
        ),
        ({"number": 17}, "number shall be at most max_key_per_request (16)"),
        ({"number": 0}, "number shall be a positive integer"),
    ],
)
def test_bad_requests_get_the_standard_messages(
    api, master, filled, device, body, message
):
    response = post(api, f"/api/v1/keys/{slave_id(device)}/enc_keys", master[1], body)
    assert response.status_code == 400
    assert response.json()["message"] == message


def test_an_empty_pool_is_a_503_and_a_security_alert(api, master, device):
    kme.device_sae(device.device)
    response = post(api, f"/api/v1/keys/{slave_id(device)}/enc_keys", master[1], {})
    assert response.status_code == 503
    assert "exhausted" in response.json()["message"]
    from alerts.models import Alert

    assert Alert.objects.get().kind == "qkd_pool_exhausted"


def test_a_compromised_link_releases_nothing(api, master, filled, device):
    QkdLink.objects.update(status=QkdLink.Status.COMPROMISED)
    response = post(api, f"/api/v1/keys/{slave_id(device)}/enc_keys", master[1], {})
    assert response.status_code == 503
    assert "compromised" in response.json()["message"]


def test_keys_are_encrypted_at_rest(master, device):
    material = os.urandom(32)
    kme.fill_pools(kme.default_link(), material)
    stored = bytes(QkdKey.objects.get().sealed_material)
    assert material not in stored
    assert len(stored) == 12 + 32 + 16


def test_device_saes_are_named_after_their_serial(device):
    assert kme.device_sae(device.device).sae_id == "device-HUB-1"
    assert Sae.objects.filter(device=device.device).count() == 1


def test_only_the_ingest_server_may_take_keys_as_master(
    api, filled, device, other_device
):
    from alerts.models import Alert

    response = post(
        api, f"/api/v1/keys/{slave_id(device)}/enc_keys", other_device.token, {}
    )
    assert response.status_code == 401
    assert response.content == b""
    assert not Alert.objects.exists()  # no false "pool exhausted" either
    assert (
        get(api, f"/api/v1/keys/{slave_id(device)}/status", device.token).status_code
        == 401
    )


def test_a_delivery_that_was_not_recorded_keeps_the_key(
    api, master, filled, device, monkeypatch
):
    # Killed after dec_keys removed the key but before its audit row: the key
    # must still be there for the device's retry, not gone with no record.
    enc = post(api, f"/api/v1/keys/{slave_id(device)}/enc_keys", master[1], {})
    ids = [{"key_ID": k["key_ID"]} for k in enc.json()["keys"]]
    url = f"/api/v1/keys/{master[0].sae_id}/dec_keys"

    def killed(*args, **kwargs):
        raise ConnectionError("process killed")

    monkeypatch.setattr(services, "record_key_event", killed)
    with pytest.raises(ConnectionError):
        post(api, url, device.token, {"key_IDs": ids})
    monkeypatch.undo()
    again = post(api, url, device.token, {"key_IDs": ids})
    assert again.json()["keys"] == enc.json()["keys"]
