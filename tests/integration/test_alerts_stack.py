"""An abnormal reading posted to Daphne becomes an alert on a clinician's socket,
through a real Celery worker, PostgreSQL and the Redis channel layer."""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from tests.test_telemetry_ingest import batch, obs

from .test_foundation_stack import sign_in
from .test_ingest_stack import upload

pytestmark = pytest.mark.django_db(transaction=True)


def alert_socket(stack, token: str):
    headers = {"Authorization": f"Token {token}", "Origin": stack.base_url}
    return connect(
        stack.ws_url + "/ws/alerts/",
        additional_headers=headers,
        ssl=stack.ssl_context(),
        open_timeout=10,
    )


def next_alert(ws, timeout: float = 30) -> dict:
    while True:
        message = json.loads(ws.recv(timeout=timeout))
        if message["type"] == "alert":
            return message


def test_an_abnormal_reading_reaches_the_clinicians_socket(stack, clinician, device):
    token = sign_in(stack, "clinician")
    with alert_socket(stack, token) as ws:
        hello = json.loads(ws.recv(timeout=10))
        body = batch(observations=[obs("8310-5", 40.1, "Cel")], ecg=[])
        assert upload(stack, device.token, body).status_code == 201
        event = next_alert(ws)
    assert event["alert"]["kind"] == "temperature_high"
    assert event["seq"] > hello["max_seq"]


def test_a_clinician_who_was_offline_catches_up(stack, clinician, device):
    token = sign_in(stack, "clinician")
    with alert_socket(stack, token) as ws:
        seen = json.loads(ws.recv(timeout=10))["max_seq"]
    body = batch(observations=[obs("8310-5", 34.6, "Cel")], ecg=[])
    assert upload(stack, device.token, body).status_code == 201
    http = stack.session()
    http.headers["Authorization"] = f"Token {token}"

    def caught_up() -> list:
        return http.get(
            stack.base_url + "/api/v1/alerts/", params={"after_seq": seen}, timeout=10
        ).json()["results"]

    from .stack import wait_until

    wait_until(lambda: len(caught_up()) >= 2, 30, "no alerts to catch up on")
    # 34.6 °C: below the temperature limit, and NEWS2 scores it 3 (low-medium).
    assert {a["kind"] for a in caught_up()} == {"temperature_low", "news2"}
