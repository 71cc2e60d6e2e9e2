"""POST /api/v1/auth/token and the token on REST and WebSocket."""

from __future__ import annotations

import warnings

import pytest
from channels.testing import WebsocketCommunicator
from django.core.cache.backends.base import CacheKeyWarning
from django.test import override_settings

from patients.auth import user_for_token
from rpm.asgi import application
from tests.conftest import PASSWORD

URL = "/api/v1/auth/token"


def obtain(api, username: str, password: str):
    return api.post(URL, {"username": username, "password": password}, format="json")


def test_it_gives_a_token_for_the_right_password(api, clinician):
    response = obtain(api, "clinician", PASSWORD)
    assert response.status_code == 200
    assert response.json()["token"].startswith("rpmc_")
    assert user_for_token(response.json()["token"]) == clinician


def test_it_rejects_a_wrong_password(api, clinician):
    response = obtain(api, "clinician", "wrong")
    assert response.status_code == 400
    assert "token" not in response.json()


def test_it_stores_only_a_hash_of_the_token(api, clinician):
    token = obtain(api, "clinician", PASSWORD).json()["token"]
    stored = clinician.api_tokens.get()
    assert token not in stored.digest
    assert len(stored.digest) == 64


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_it_throttles_failed_sign_ins_even_with_the_right_password_after(
    api, clinician
):
    for _ in range(3):
        assert obtain(api, "clinician", "wrong").status_code == 400
    response = obtain(api, "clinician", PASSWORD)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


@override_settings(LOGIN_FAILURE_LIMIT=2)
def test_any_typed_username_is_counted_under_a_safe_cache_key(api, clinician):
    """Found by `make fuzz`: control characters from the username went into the
    cache key. It is now a hash: short, printable, and not the name itself."""
    typed = "\x16#\U000fc252 Clinician" + "x" * 100
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        for _ in range(2):
            assert obtain(api, typed, "wrong").status_code == 400
        assert obtain(api, typed, "wrong").status_code == 429


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_the_admin_sign_in_is_throttled_too(client, admin):
    for _ in range(3):
        client.post("/admin/login/", {"username": "admin", "password": "wrong"})
    client.post("/admin/login/", {"username": "admin", "password": PASSWORD})
    assert client.get("/admin/").status_code == 302


def test_an_expired_token_is_refused(api, clinician):
    token = obtain(api, "clinician", PASSWORD).json()["token"]
    clinician.api_tokens.update(expires_at="2000-01-01T00:00:00Z")
    assert user_for_token(token) is None


def test_the_token_authenticates_the_rest_api(api, clinician):
    token = obtain(api, "clinician", PASSWORD).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/patients/").status_code == 200


def test_a_bad_token_is_refused_by_the_rest_api(api, clinician):
    api.credentials(HTTP_AUTHORIZATION="Token rpmc_not-a-real-token")
    assert api.get("/api/v1/patients/").status_code == 401


def socket(token: str | None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if token:
        headers.append((b"authorization", f"Token {token}".encode()))
    return WebsocketCommunicator(application, "/ws/alerts/", headers=headers)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_token_opens_the_alert_websocket(clinician):
    from channels.db import database_sync_to_async

    from patients.services import issue_clinician_token

    token = await database_sync_to_async(issue_clinician_token)(user=clinician)
    communicator = socket(token)
    connected, _ = await communicator.connect(timeout=10)
    try:
        assert connected
        assert (await communicator.receive_json_from(timeout=10))["type"] == "hello"
        await communicator.send_json_to({"type": "ping", "id": 7})
        pong = await communicator.receive_json_from(timeout=10)
        assert pong == {"type": "pong", "id": 7, "max_seq": 0}
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize("token", [None, "rpmc_forged"])
async def test_the_alert_websocket_closes_4403_without_a_valid_token(token):
    communicator = socket(token)
    await communicator.connect(timeout=10)
    assert await communicator.receive_output(timeout=10) == {
        "type": "websocket.close",
        "code": 4403,
    }
    await communicator.disconnect()
