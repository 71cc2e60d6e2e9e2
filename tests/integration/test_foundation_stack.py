"""The foundation on real servers: Daphne over TLS, PostgreSQL, Redis channel layer."""

from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import async_to_sync
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from alerts.consumers import staff_group
from tests.conftest import PASSWORD

from .stack import channel_layer

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(stack, username: str) -> str:
    response = stack.session().post(
        stack.base_url + "/api/v1/auth/token",
        json={"username": username, "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def test_a_clinician_reads_their_patients_through_daphne(
    stack, clinician, other_clinician
):
    token = sign_in(stack, "clinician")
    response = stack.session().get(
        stack.base_url + "/api/v1/patients/",
        headers={"Authorization": f"Token {token}"},
        timeout=10,
    )
    assert response.status_code == 200
    assert [p["mrn"] for p in response.json()["results"]] == ["MRN-1"]


def test_the_alert_socket_carries_messages_through_redis(stack, clinician):
    token = sign_in(stack, "clinician")
    headers = {"Authorization": f"Token {token}", "Origin": stack.base_url}
    with connect(
        stack.ws_url + "/ws/alerts/",
        additional_headers=headers,
        ssl=stack.ssl_context(),
        open_timeout=10,
    ) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        layer = channel_layer()
        async_to_sync(layer.group_send)(
            staff_group(clinician.pk),
            {
                "type": "alert.event",
                "payload": {"type": "test", "n": 1},
            },
        )
        assert json.loads(ws.recv(timeout=10)) == {"type": "test", "n": 1}


def test_an_idle_alert_socket_stays_open_and_still_delivers(stack, clinician):
    """redis-py 8 times reads out after 5 s, as long as channels-redis blocks: an
    idle consumer used to die with 1011 within seconds (see CHANNEL_LAYERS)."""
    token = sign_in(stack, "clinician")
    headers = {"Authorization": f"Token {token}", "Origin": stack.base_url}
    with connect(
        stack.ws_url + "/ws/alerts/",
        additional_headers=headers,
        ssl=stack.ssl_context(),
        open_timeout=10,
    ) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        time.sleep(12)
        layer = channel_layer()
        async_to_sync(layer.group_send)(
            staff_group(clinician.pk),
            {"type": "alert.event", "payload": {"type": "test", "n": 2}},
        )
        assert json.loads(ws.recv(timeout=10)) == {"type": "test", "n": 2}


def test_the_alert_socket_refuses_a_forged_token(stack, clinician):
    headers = {"Authorization": "Token rpmc_forged", "Origin": stack.base_url}
    with (
        connect(
            stack.ws_url + "/ws/alerts/",
            additional_headers=headers,
            ssl=stack.ssl_context(),
            open_timeout=10,
        ) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4403
