"""Operations on the real stack: metrics from Daphne and the worker added up across
processes, readiness naming a dead Redis or PostgreSQL, the request ID reaching
the worker's log."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from prometheus_client.parser import text_string_to_metric_families

from security.tls import daphne_tls_endpoint
from telemetry.models import Batch
from tests.test_telemetry_ingest import batch

from .stack import BIN, Process, Stack, free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/telemetry/batches"
PROCESS_BATCH = "telemetry.tasks.process_batch"


def upload(stack: Stack, token: str, request_id: str) -> requests.Response:
    return stack.session().post(
        stack.base_url + URL,
        json=batch(),
        timeout=20,
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id},
    )


def admin_session(stack: Stack, admin) -> requests.Session:
    """A signed-in admin's browser session, as the admin console would make it."""
    store = SessionStore()
    store[SESSION_KEY] = str(admin.pk)
    store[BACKEND_SESSION_KEY] = "patients.auth.ThrottledModelBackend"
    store[HASH_SESSION_KEY] = admin.get_session_auth_hash()
    store.create()
    http = stack.session()
    http.cookies.set("sessionid", store.session_key)
    return http


def scrape(http: requests.Session, base_url: str) -> dict[tuple, float]:
    response = http.get(base_url + "/metrics", timeout=20)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def processed(n: int) -> bool:
    return Batch.objects.filter(state=Batch.State.PROCESSED).count() >= n


def test_daphne_serves_metrics_written_by_itself_and_by_the_worker(
    stack, device, admin
):
    for _ in range(2):
        assert upload(stack, device.token, uuid.uuid4().hex).status_code == 201
    wait_until(lambda: processed(2), 60, lambda: stack.worker.log()[-3000:])
    http = admin_session(stack, admin)

    def worker_counted() -> bool:
        samples = scrape(http, stack.base_url)
        return value(samples, "rpm_tasks_total", task=PROCESS_BATCH, state="SUCCESS")

    wait_until(worker_counted, 20, "the worker's task counter never showed")
    samples = scrape(http, stack.base_url)
    assert value(samples, "rpm_uploads_total", outcome="stored") >= 2
    assert value(samples, "rpm_readings_ingested_total", type="vital") >= 4
    assert value(samples, "rpm_task_queue_wait_seconds_count", task=PROCESS_BATCH) >= 2
    assert value(samples, "rpm_task_duration_seconds_count", task=PROCESS_BATCH) >= 2
    latency = value(
        samples,
        "rpm_http_request_duration_seconds_count",
        route="telemetry-batches",
        method="POST",
        status="2xx",
    )
    assert latency >= 2
    assert value(samples, "rpm_metrics_source_up", source="broker") == 1
    queue = stack.env["CELERY_QUEUE"]
    assert ("rpm_task_queue_length", frozenset({("queue", queue)})) in samples


def test_the_worker_log_names_the_upload_that_queued_its_task(stack, device):
    request_id = f"itest-{uuid.uuid4().hex}"
    response = upload(stack, device.token, request_id)
    assert response.status_code == 201
    assert response.headers["X-Request-ID"] == request_id
    wait_until(
        lambda: request_id in stack.worker.log(),
        60,
        lambda: "request ID not in the worker log:\n" + stack.worker.log()[-3000:],
    )
    lines = [x for x in stack.worker.log().splitlines() if request_id in x]
    assert any(PROCESS_BATCH in line for line in lines), lines


def test_readyz_is_ready_on_the_real_stack(stack):
    response = stack.session().get(stack.base_url + "/readyz", timeout=20)
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["broker"]["ok"]
    assert body["checks"]["channel_layer"]["detail"]["backend"] == "RedisChannelLayer"


# --- readiness when a dependency dies: throwaway servers, never the machine's own ---


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[tuple[Process, str]]:
    port = free_port()
    server = Process(
        "redis",
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        {},
        tmp_path / "redis.log",
    )
    server.start()
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: _pings(url), 10, lambda: server.log())
    try:
        yield server, url
    finally:
        server.stop()


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def extra_daphne(stack: Stack, tmp_path: Path, **env: str) -> tuple[Process, str]:
    port = free_port()
    process = Process(
        "daphne-extra",
        [
            str(BIN / "daphne"),
            "-e",
            daphne_tls_endpoint(port, stack.cert, stack.workdir / "key.pem"),
            "rpm.asgi:application",
        ],
        {**stack.env, "RPM_VAR_DIR": str(tmp_path / "var"), **env},
        tmp_path / "daphne-extra.log",
    )
    process.start()
    base_url = f"https://127.0.0.1:{port}"
    wait_until(
        lambda: _answers(stack, base_url + "/healthz"), 30, lambda: process.log()
    )
    return process, base_url


def _answers(stack: Stack, url: str) -> bool:
    try:
        return stack.session().get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def readyz(stack: Stack, base_url: str) -> tuple[int, dict]:
    response = stack.session().get(base_url + "/readyz", timeout=30)
    return response.status_code, response.json()


def test_readyz_names_redis_when_it_stops(stack, tmp_path, throwaway_redis):
    server, url = throwaway_redis
    daphne, base_url = extra_daphne(stack, tmp_path, REDIS_URL=url)
    try:
        assert readyz(stack, base_url)[0] == 200
        server.stop()
        status, body = readyz(stack, base_url)
        assert status == 503
        assert set(body["failed"]) == {"channel_layer", "broker"}
        assert body["checks"]["database"]["ok"]
    finally:
        daphne.stop()


def test_readyz_names_the_database_when_it_is_unreachable(stack, tmp_path):
    parts = urlsplit(os.environ["DATABASE_URL"])
    user = parts.username or "postgres"
    closed = urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{free_port()}"))
    daphne, base_url = extra_daphne(
        stack, tmp_path, DATABASE_URL=closed, DB_POOL_TIMEOUT_S="2"
    )
    try:
        status, body = readyz(stack, base_url)
        assert status == 503
        assert body["failed"] == ["database"]
        assert body["checks"]["migrations"]["ok"] is None  # not run without it
    finally:
        daphne.stop()
