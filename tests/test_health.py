"""/healthz and /readyz: unauthenticated probes that name what is not ready."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from telemetry.models import Batch

from .test_telemetry_ingest import batch, post

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_healthz_says_ok_to_anyone(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_on_the_embedded_default(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert set(body["checks"]) == {
        "database",
        "channel_layer",
        "broker",
        "migrations",
        "backlog",
    }
    assert all(check["ok"] for check in body["checks"].values())


def test_the_probes_are_not_redirected_to_https_in_production(client):
    with override_settings(SECURE_SSL_REDIRECT=True):
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 301


def test_readyz_names_a_dead_broker(client):
    with override_settings(REDIS_URL=DEAD_REDIS):
        response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"]["error"] == "ConnectionError"


def test_readyz_names_a_dead_channel_layer(client):
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [DEAD_REDIS]},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["channel_layer"]


def test_readyz_fails_when_too_many_batches_wait_for_analysis(client, device):
    for _ in range(3):
        post(client, batch(), device.token)
    Batch.objects.update(
        state=Batch.State.PENDING,
        processed_at=None,
        queued_at=timezone.now() - timedelta(minutes=2),
    )
    with override_settings(READY_BACKLOG_LIMIT=3):
        assert client.get("/readyz").status_code == 200
    with override_settings(READY_BACKLOG_LIMIT=2):
        response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["failed"] == ["backlog"]
    assert body["checks"]["backlog"]["detail"] == {"overdue": 3, "limit": 2}


@pytest.mark.django_db(transaction=True)
def test_readyz_fails_until_the_migrations_are_applied(client):
    call_command("migrate", "telemetry", "0001", verbosity=0)
    try:
        response = client.get("/readyz")
        body = response.json()
        assert response.status_code == 503
        assert body["failed"] == ["migrations"]
        unapplied = body["checks"]["migrations"]["detail"]["unapplied"]
        assert "telemetry.0002_vital_summaries" in unapplied
    finally:
        call_command("migrate", verbosity=0)
    assert client.get("/readyz").status_code == 200
