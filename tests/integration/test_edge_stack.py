"""An edge gateway against the real stack (Daphne over TLS, a Celery worker,
PostgreSQL, Redis): its alert reaches a clinician's socket as soon as the link is
back, before the data that was buffered with it, and exactly once."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from alerts.models import Alert
from telemetry.device import Backoff
from telemetry.edge.gateway import Gateway
from telemetry.edge.policy import Policy
from telemetry.models import Batch, Observation
from telemetry.processing import process_batch
from tests.test_edge_gateway import dead_url, feed_ecg, feed_fever

from .stack import wait_until
from .test_alerts_stack import alert_socket, next_alert
from .test_foundation_stack import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_edge_alert_buffered_while_offline_reaches_the_clinician_first(
    stack, clinician, device, tmp_path
):
    alarms = io.StringIO()
    gateway = Gateway(
        dead_url(),
        device.token,
        str(tmp_path / "gw.sqlite3"),
        policy=Policy("edge-first", sample_every_s=3600),
        ca_file=str(stack.cert),
        backoff=Backoff(base_s=0.0),
        alarm_stream=alarms,
    )
    start = datetime.now(UTC) - timedelta(minutes=2)
    feed_ecg(gateway, start, ["sinus", "af", "af"])
    feed_fever(gateway, start + timedelta(seconds=5))
    gateway.step()
    gateway.flush_once()
    assert "ALARM RAISED medium af" in alarms.getvalue()
    backlog = gateway.store.pending()
    token = sign_in(stack, "clinician")
    try:
        with alert_socket(stack, token) as ws:
            json.loads(ws.recv(timeout=10))  # hello
            gateway.url = stack.base_url  # the link is back
            report = gateway.flush_once()
            kinds = {next_alert(ws)["alert"]["kind"] for _ in range(2)}
    finally:
        gateway.close()
    assert kinds == {"af", "temperature_high"}
    assert report.delivered == backlog["alert_uploads"] + backlog["data_uploads"]
    alert = Alert.objects.get(kind="af")
    assert alert.evidence["source"] == "edge"
    assert Observation.objects.filter(patient=device.device.patient).count() == 2
    pending = Batch.objects.filter(state="pending")
    try:
        wait_until(lambda: not pending.exists(), 20, "")
    except AssertionError:
        # Another suite's worker on the shared Redis took the task; the sweep
        # (requeue_stale_batches) would re-queue it after a minute: do its job now.
        for pk in pending.values_list("pk", flat=True):
            process_batch(pk)
    # The server analysed the forwarded strips too: still one AF alert.
    assert Alert.objects.filter(kind="af").count() == 1
