"""Structured logs: JSON lines carrying the request ID into tasks and alerts."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest

from rpm.logs import ContextFilter, JsonFormatter, adopt_request_id

from .test_telemetry_ingest import batch, now, post
from .test_telemetry_processing import full_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def log_lines():
    """The production handler (JSON formatter, context filter) on the root logger;
    returns the lines written so far, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(level)


def test_every_line_is_one_json_object_with_time_level_and_extras(log_lines):
    log = logging.getLogger("tests.logging")
    log.info("batch %s stored", "b-1", extra={"batch_pk": 7})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    first, second = log_lines()
    assert first["message"] == "batch b-1 stored"
    assert first["level"] == "INFO"
    assert first["logger"] == "tests.logging"
    assert first["batch_pk"] == 7
    assert datetime.fromisoformat(first["time"]).tzinfo == UTC
    assert "ValueError: boom" in second["exception"]


def test_a_well_formed_request_id_is_kept_and_returned(client, log_lines):
    response = client.get("/api/v1/alerts/", HTTP_X_REQUEST_ID="edge-4f1c2a9b77")
    assert response["X-Request-ID"] == "edge-4f1c2a9b77"
    request_lines = [x for x in log_lines() if x["logger"] == "rpm.request"]
    assert request_lines[-1]["request_id"] == "edge-4f1c2a9b77"
    assert request_lines[-1]["route"] == "alert-list"


@pytest.mark.parametrize(
    "sent",
    ["short", "has space in it", "x" * 200, "inject\nfake line", "ünïcode-id-1234"],
)
def test_a_malformed_request_id_is_replaced_by_a_new_one(client, sent):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=sent)
    returned = response["X-Request-ID"]
    assert returned != sent
    assert adopt_request_id(returned) == returned  # the new one is well formed


def test_without_a_request_id_each_request_gets_its_own(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert first != second


def test_the_upload_request_id_reaches_its_task_and_the_alert_it_raised(
    client, device, log_lines, django_capture_on_commit_callbacks
):
    body = batch(observations=full_set(now(), rr=26, spo2=91, sbp=95), ecg=[])
    with django_capture_on_commit_callbacks(execute=True):
        response = post_with_id(client, body, device.token, "upload-0a1b2c3d4e")
    assert response.status_code == 201
    lines = log_lines()
    task_lines = [
        x for x in lines if x.get("task_name") == "telemetry.tasks.process_batch"
    ]
    alert_lines = [x for x in lines if x.get("kind") == "news2" and "alert_id" in x]
    assert task_lines
    assert alert_lines
    assert {x["request_id"] for x in task_lines + alert_lines} == {"upload-0a1b2c3d4e"}


def test_upload_logs_name_no_patient(
    client, device, patient, log_lines, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(client, batch(battery_pct=5), device.token)
        post(client, batch(battery_pct=900), device.token)  # refused
    text = "\n".join(json.dumps(line) for line in log_lines())
    assert "rpm.request" in text
    for identifying in (patient.mrn, patient.given_name, patient.family_name):
        assert identifying not in text


def post_with_id(client, body: dict, token: str, request_id: str):
    return client.post(
        "/api/v1/telemetry/batches",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_X_REQUEST_ID=request_id,
    )
