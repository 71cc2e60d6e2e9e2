"""/metrics: who may read it, and the figures moving when traffic flows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alerts.rules import Finding
from alerts.services import Subject, apply_outcomes
from patients.models import Device
from patients.services import issue_clinician_token
from rpm.asgi import application
from security import kme
from security.models import QkdRun
from telemetry.models import Batch
from tests.conftest import PASSWORD

from .test_telemetry_ingest import batch, post

TOKEN = "metrics-token-for-tests-0123456789abcdef"
pytestmark = pytest.mark.django_db

Samples = dict[tuple[str, frozenset], float]


@pytest.fixture(autouse=True)
def _metrics_token():
    with override_settings(METRICS_TOKEN=TOKEN):
        yield


def scrape(client) -> Samples:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    text = response.content.decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_it_refuses_a_caller_without_token_or_session(client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_a_wrong_token(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert response.status_code == 401


def test_it_refuses_a_clinician_session(client, clinician):
    client.login(username="clinician", password=PASSWORD)
    assert client.get("/metrics").status_code == 403


def test_it_answers_an_admin_session_in_the_prometheus_format(client, admin):
    client.login(username="admin", password=PASSWORD)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    names = {f.name for f in text_string_to_metric_families(response.content.decode())}
    assert {"rpm_uploads", "rpm_batches_pending", "rpm_devices"} <= names


def test_without_a_token_configured_no_bearer_is_accepted(client):
    with override_settings(METRICS_TOKEN=""):
        response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 401


@pytest.mark.django_db(transaction=True)  # counted when the batch commits
def test_an_upload_counts_the_readings_it_stored(client, device):
    before = scrape(client)
    body = batch()
    assert post(client, body, device.token).status_code == 201
    assert post(client, body, device.token).status_code == 200  # a retry
    after = scrape(client)
    vital = ("rpm_readings_ingested_total", {"type": "vital"})
    ecg = ("rpm_readings_ingested_total", {"type": "ecg_segment"})
    assert value(after, vital[0], **vital[1]) - value(before, vital[0], **vital[1]) == 2
    assert value(after, ecg[0], **ecg[1]) - value(before, ecg[0], **ecg[1]) == 1
    for outcome in ("stored", "duplicate"):
        delta = value(after, "rpm_uploads_total", outcome=outcome) - value(
            before, "rpm_uploads_total", outcome=outcome
        )
        assert delta == 1, outcome


def test_refused_uploads_are_counted_by_reason(client, device):
    before = scrape(client)
    post(client, batch(battery_pct=900), device.token)
    post(client, batch(), "not-a-token")
    post(client, "x", device.token, content_type="text/plain")
    after = scrape(client)
    for reason in ("invalid-batch", "unauthenticated", "unsupported-media-type"):
        delta = value(after, "rpm_uploads_total", outcome=reason) - value(
            before, "rpm_uploads_total", outcome=reason
        )
        assert delta == 1, reason


def test_request_latency_is_labelled_by_route_name_never_by_path(
    client, clinician, patient
):
    client.login(username="clinician", password=PASSWORD)
    url = f"/api/v1/patients/{patient.pk}/observations/"
    assert client.get(url).status_code == 200
    samples = scrape(client)
    count = value(
        samples,
        "rpm_http_request_duration_seconds_count",
        route="patient-observations",
        method="GET",
        status="2xx",
    )
    assert count >= 1
    routes = {dict(labels).get("route") for _, labels in samples}
    assert not any(str(patient.pk) in (route or "") for route in routes)


def test_the_request_id_comes_back_in_the_response(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="upload-7f3a9c21")
    assert response["X-Request-ID"] == "upload-7f3a9c21"


def test_the_backlog_gauges_count_pending_and_overdue_batches(client, device):
    post(client, batch(), device.token)
    post(client, batch(), device.token)
    Batch.objects.update(state=Batch.State.PENDING, processed_at=None)
    old = Batch.objects.order_by("pk").first()
    Batch.objects.filter(pk=old.pk).update(
        queued_at=timezone.now() - timedelta(minutes=5)
    )
    samples = scrape(client)
    assert value(samples, "rpm_batches_pending") == 2
    assert value(samples, "rpm_batches_overdue") == 1


def test_the_device_gauge_tells_online_stale_and_never_seen(
    client, device, other_device
):
    post(client, batch(), device.token)
    Device.objects.filter(pk=other_device.device.pk).update(
        stale=True, last_seen_at=timezone.now() - timedelta(hours=1)
    )
    samples = scrape(client)
    assert value(samples, "rpm_devices", state="online") == 1
    assert value(samples, "rpm_devices", state="stale") == 1
    assert value(samples, "rpm_devices", state="never_seen") == 0


def test_alerts_are_counted_when_raised_and_while_open(
    client, patient, django_capture_on_commit_callbacks
):
    before = scrape(client)
    measured = timezone.now() - timedelta(seconds=30)
    with django_capture_on_commit_callbacks(execute=True):
        apply_outcomes(
            subject=Subject.of_patient(patient),
            outcomes=[Finding("news2", "high", measured, "NEWS2 7", {})],
        )
    after = scrape(client)
    raised = ("rpm_alerts_raised_total", {"kind": "news2", "priority": "high"})
    assert value(after, raised[0], **raised[1]) - value(before, raised[0], **raised[1])
    delay = "rpm_alert_raise_delay_seconds"
    count = value(after, f"{delay}_count", kind="news2") - value(
        before, f"{delay}_count", kind="news2"
    )
    total = value(after, f"{delay}_sum", kind="news2") - value(
        before, f"{delay}_sum", kind="news2"
    )
    assert count == 1
    assert 30 <= total < 60
    open_alerts = value(
        after, "rpm_alerts_open", kind="news2", state="active", priority="high"
    )
    assert open_alerts == 1


def test_the_qkd_gauges_show_the_latest_run_and_the_key_pools(client, device):
    link = kme.default_link()
    QkdRun.objects.create(
        link=link,
        qber=0.031,
        key_rate_per_pulse=2.5e-4,
        final_key_bits=512,
        aborted=False,
        report={},
    )
    kme.fill_pools(link, bytes(64))  # two keys for the device's pool
    samples = scrape(client)
    assert value(samples, "rpm_qkd_link_up", link="default") == 1
    assert value(samples, "rpm_qkd_qber", link="default") == pytest.approx(0.031)
    assert value(samples, "rpm_qkd_key_rate_per_pulse", link="default") == 2.5e-4
    assert value(samples, "rpm_qkd_keys_available") == 2
    assert value(samples, "rpm_qkd_pools_empty") == 0


def test_in_process_tasks_are_timed_and_counted(
    client, device, django_capture_on_commit_callbacks
):
    task = "telemetry.tasks.process_batch"
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, batch(ecg=[]), device.token).status_code == 201
    after = scrape(client)
    finished = value(after, "rpm_tasks_total", task=task, state="SUCCESS") - value(
        before, "rpm_tasks_total", task=task, state="SUCCESS"
    )
    timed = value(after, "rpm_task_duration_seconds_count", task=task) - value(
        before, "rpm_task_duration_seconds_count", task=task
    )
    assert (finished, timed) == (1, 1)


def test_a_dead_broker_is_reported_and_the_rest_still_served(client):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        samples = scrape(client)
    assert value(samples, "rpm_metrics_source_up", source="broker") == 0
    assert value(samples, "rpm_metrics_source_up", source="database") == 1
    assert ("rpm_batches_pending", frozenset()) in samples


async def ascrape() -> Samples:
    response = await AsyncClient().get(
        "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_websocket_gauge_follows_connections(clinician):
    token = await database_sync_to_async(issue_clinician_token)(user=clinician)
    before = value(await ascrape(), "rpm_websocket_connections", stream="staff")
    communicator = WebsocketCommunicator(
        application,
        "/ws/alerts/",
        headers=[
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
            (b"authorization", f"Token {token}".encode()),
        ],
    )
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    await communicator.receive_json_from(timeout=10)
    during = value(await ascrape(), "rpm_websocket_connections", stream="staff")
    await communicator.disconnect()
    after = value(await ascrape(), "rpm_websocket_connections", stream="staff")
    assert (during, after) == (before + 1, before)


@pytest.mark.django_db(transaction=True)
def test_an_edge_upload_counts_its_readings_too(client, device):
    from .test_edge_api import edge_batch
    from .test_edge_api import post as post_edge

    before = scrape(client)
    body = edge_batch(observations=batch()["observations"])
    assert post_edge(client, device.token, body).status_code == 201, body
    assert post_edge(client, device.token, body).status_code == 200
    after = scrape(client)
    name, labels = "rpm_readings_ingested_total", {"type": "vital"}
    assert value(after, name, **labels) - value(before, name, **labels) == 2


def test_pushes_the_channel_layer_dropped_are_counted_by_stream(client):
    """channels-redis reports them only as an INFO line; they are counted even
    where LOG_LEVEL hides that line."""
    import logging

    from rpm.metrics import OVER_CAPACITY, CountDroppedPushes

    before = scrape(client)
    logging.getLogger("channels_redis.core").info(OVER_CAPACITY, 2, 3, "staff.7")
    quiet = CountDroppedPushes("WARNING")
    record = logging.LogRecord(
        "channels_redis.core",
        logging.INFO,
        "",
        0,
        OVER_CAPACITY,
        (1, 1, "patient.9"),
        None,
    )
    assert quiet.filter(record) is False
    after = scrape(client)
    for stream, dropped in (("staff", 2), ("patient", 1)):
        delta = value(after, "rpm_live_pushes_dropped_total", stream=stream) - value(
            before, "rpm_live_pushes_dropped_total", stream=stream
        )
        assert delta == dropped, stream
