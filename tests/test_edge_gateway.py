"""The gateway itself, against a live server: alarms on the box while the link is
down, durable buffering, exactly-once delivery with alerts first, kept ECG."""

from __future__ import annotations

import io
import socket
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import requests

from alerts.models import Alert
from telemetry.device import Backoff
from telemetry.edge.gateway import Gateway
from telemetry.edge.local_page import serve
from telemetry.edge.policy import Policy
from telemetry.models import (
    Batch,
    EcgFetchRequest,
    EcgSegment,
    EdgeEcgFeatures,
    Observation,
)
from telemetry.simulator.ecg import EcgStream, Rhythm

pytestmark = pytest.mark.django_db(transaction=True)


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there


def feed_ecg(gateway: Gateway, start: datetime, rhythms: list[str]) -> None:
    """10 s of each rhythm, streamed to the box in 2 s chunks."""
    stream = EcgStream(250, np.random.default_rng(7))
    for i, name in enumerate(rhythms):
        for k in range(5):
            t = i * 10 + k * 2
            mv = stream.segment(
                t, 2.0, Rhythm(name, 105 if name == "af" else 70), "clean"
            )
            gateway.add_ecg(
                "II",
                250,
                start + timedelta(seconds=t),
                np.rint(mv * 1000).astype(int).tolist(),
            )


def feed_fever(gateway: Gateway, at: datetime) -> None:
    gateway.add_observation("8310-5", 40.3, "Cel", at)
    gateway.add_observation("8867-4", 88, "/min", at)


@pytest.fixture
def box(tmp_path, device):
    alarms = io.StringIO()
    gateway = Gateway(
        dead_url(),
        device.token,
        str(tmp_path / "gw.sqlite3"),
        policy=Policy("edge-first", sample_every_s=3600),
        alarm_stream=alarms,
        backoff=Backoff(base_s=0.0),  # retry at once: the test decides when
    )
    gateway.alarm_log = alarms
    yield gateway
    gateway.close()


def test_with_the_link_down_it_alarms_on_the_box_and_keeps_everything(box):
    start = datetime.now(UTC) - timedelta(minutes=2)
    feed_ecg(box, start, ["sinus", "af"])
    feed_fever(box, start + timedelta(seconds=15))
    box.step()
    assert box.flush_once().retry_in is not None
    assert "\aALARM RAISED medium af" in box.alarm_log.getvalue()
    assert "temperature_high" in box.alarm_log.getvalue()
    page = serve(box, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{page.server_address[1]}"
        shown = requests.get(url + "/alarms.json", timeout=5).json()
        html = requests.get(url + "/", timeout=5).text
    finally:
        page.shutdown()
    assert {a["kind"] for a in shown["alarms"]} >= {"af", "temperature_high"}
    assert shown["link"].startswith("down")
    assert shown["pending"]["alert_uploads"] >= 1
    assert "Atrial" in html or "af" in html
    assert Batch.objects.count() == 0


def test_after_reconnecting_it_delivers_once_and_alerts_first(box, live_server):
    start = datetime.now(UTC) - timedelta(minutes=2)
    feed_ecg(box, start, ["sinus", "af"])
    feed_fever(box, start + timedelta(seconds=15))
    box.step()
    feed_fever(box, start + timedelta(seconds=25))
    box.step()
    box.flush_once()
    box.url = live_server.url  # the link is back
    backlog = box.store.pending()
    first = box.store.next_upload()
    report = box.flush_once()
    assert report.delivered == backlog["alert_uploads"] + backlog["data_uploads"]
    batches = list(Batch.objects.order_by("pk").select_related("edge"))
    kinds = ["alerts" if b.edge.outcome_count else "data" for b in batches]
    assert kinds == sorted(kinds)  # every alert upload before any data upload
    assert kinds.count("alerts") == backlog["alert_uploads"]
    assert str(batches[0].batch_id) == first.batch_id
    assert Observation.objects.count() == 4  # each reading once
    assert Alert.objects.filter(kind="af", evidence__source="edge").count() == 1
    # The answer to an upload was lost: the box sends it again, the server keeps one.
    assert box._attempt(first).duplicates == 1  # same batch_id and body as before
    assert Batch.objects.count() == len(batches)


def test_quiet_ecg_stays_on_the_box_until_a_clinician_fetches_it(
    box, live_server, clinician, patient, api
):
    start = datetime.now(UTC) - timedelta(minutes=3)
    box.url = live_server.url
    feed_ecg(box, start, ["sinus"] * 6)
    box.step()
    box.flush_once()
    forwarded = EcgSegment.objects.count()
    # The hourly sample strip is not due (its schedule starts within the last
    # hour): all six windows are kept on the box, only their features went up.
    assert forwarded == 0
    assert EdgeEcgFeatures.objects.count() == 6
    api.force_authenticate(clinician)
    made = api.post(
        f"/api/v1/patients/{patient.pk}/ecg-requests",
        {
            "start": (start + timedelta(seconds=20)).isoformat(),
            "end": (start + timedelta(seconds=40)).isoformat(),
        },
        format="json",
    ).json()
    assert box.poll_requests() == 1
    box.flush_once()
    fetch = EcgFetchRequest.objects.get(pk=made["id"])
    assert (fetch.state, fetch.segment_count) == ("fulfilled", 2)
    assert EcgSegment.objects.count() == forwarded + 2
    assert box.poll_requests() == 0  # answered once
