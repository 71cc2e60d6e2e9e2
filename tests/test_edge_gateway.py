"""The gateway itself, against a live server: alarms on the box while the link is
down, durable buffering, exactly-once delivery with alerts first, kept ECG."""

from __future__ import annotations

import io
import json
import socket
import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import requests

from alerts.models import Alert
from telemetry.device import Backoff, FlushReport
from telemetry.edge.gateway import Gateway
from telemetry.edge.local_page import serve
from telemetry.edge.outbox import DATA_LANE, Step, Store
from telemetry.edge.policy import Policy
from telemetry.models import (
    Batch,
    EcgFetchRequest,
    EcgSegment,
    EdgeEcgFeatures,
    Observation,
)
from telemetry.simulator.ecg import EcgStream, Rhythm
from tests.test_telemetry_ingest import batch, iso, obs

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
    first = box.store.oldest()
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
    assert box.uploader.attempt(first).duplicates == 1  # same batch_id and body
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


def feed_heart_rates(gateway: Gateway, start: datetime, count: int) -> None:
    for i in range(count):
        at = start + timedelta(seconds=i)
        gateway.add_observation("8867-4", 60 + i % 20, "/min", at)


def test_an_upload_too_large_is_split_in_its_place_and_stored_once(
    box, live_server, settings, tmp_path, device
):
    start = datetime.now(UTC) - timedelta(minutes=2)
    feed_heart_rates(box, start, 40)
    box.step()
    feed_heart_rates(box, start + timedelta(seconds=60), 1)
    box.step()
    assert box.store.pending()["data_uploads"] == 2
    whole = box.store.oldest()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(json.dumps(whole.body)) * 3 // 4
    box.url = live_server.url
    # The server answers 413 and stores nothing; the box keeps two halves with
    # batch_ids of their own, committed before either is sent.
    assert box.uploader.attempt(whole) == FlushReport()
    half = box.store.oldest()
    assert half.batch_id != whole.batch_id
    assert box.store.pending()["data_uploads"] == 3
    box.close()  # a crash before the halves went out
    again = Gateway(
        live_server.url,
        device.token,
        str(tmp_path / "gw.sqlite3"),
        policy=box.policy,
        backoff=Backoff(base_s=0.0),
    )
    try:
        assert again.flush_once() == FlushReport(delivered=3)
        # The answer to a half was lost: it goes again, the server keeps one.
        assert again.uploader.attempt(half).duplicates == 1
        assert again.store.pending()["dead_letters"] == 0
    finally:
        again.close()
    batches = list(Batch.objects.order_by("pk"))
    assert str(batches[0].batch_id) == half.batch_id
    assert whole.batch_id not in {str(b.batch_id) for b in batches}
    counts = [b.observation_count for b in batches]
    assert counts[-1] == 1  # the upload formed after it still went after both halves
    assert sum(counts) == Observation.objects.count() == 41  # every reading once


def test_a_store_made_before_uploads_could_split_keeps_its_queue(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)  # the outbox as it was, one upload waiting
    db.executescript(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT, lane INTEGER NOT NULL,
            path TEXT NOT NULL, batch_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, not_before REAL NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX outbox_order ON outbox (lane, id);
        INSERT INTO outbox (lane, path, batch_id, body)
            VALUES (1, '/edge', 'waiting', '{"batch_id": "waiting"}');
        """
    )
    db.close()
    store = Store(path)
    try:
        store.commit(Step(uploads=[(DATA_LANE, "/edge", {"ecg": []})]))
        first = store.oldest()
        assert (first.batch_id, first.origin) == ("waiting", first.id)
        store.delivered(first)
        assert store.oldest().batch_id != "waiting"
    finally:
        store.close()


def test_the_device_port_answers_as_the_server_would_and_keeps_only_good_batches(
    box,
):
    page = serve(box, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{page.server_address[1]}/api/v1/telemetry/batches"
    at = datetime.now(UTC) - timedelta(minutes=1)

    def upload(body: dict) -> requests.Response:
        return requests.post(url, json=body, timeout=5)

    try:
        implausible = batch(
            observations=[obs(time=at), obs(value=900, time=at)], ecg=[]
        )
        future = batch(
            sent_at=iso(datetime.now(UTC) + timedelta(hours=1)),
            observations=[obs(time=at)],
            ecg=[],
        )
        broken = upload(implausible)
        late = upload(future)
        kept_nothing = box.store.inbox()
        good = batch(observations=[obs(time=at)], ecg=[])
        answers = [upload(good).status_code, upload(good).status_code]
    finally:
        page.shutdown()
    assert broken.status_code == 400
    [error] = broken.json()["errors"]
    assert error["path"].startswith("observations[1]")
    assert "not plausible" in error["message"]
    assert late.status_code == 400
    assert late.json()["errors"][0]["path"] == "sent_at"
    assert kept_nothing == []
    assert answers == [201, 200]
    assert len(box.store.inbox()) == 1


@pytest.mark.parametrize(
    ("code", "value", "unit", "why"),
    [
        ("1234-5", 70, "/min", "unknown code '1234-5'"),
        ("8867-4", 70, "bpm", "takes '/min', not 'bpm'"),
        ("8867-4", 900, "/min", "not plausible"),
        ("8867-4", "fast", "/min", "must be a number"),
    ],
    ids=["unknown code", "wrong unit", "implausible value", "text for a number"],
)
def test_a_reading_the_server_would_refuse_is_refused_and_the_box_goes_on(
    box, live_server, code, value, unit, why
):
    at = datetime.now(UTC) - timedelta(minutes=1)
    with pytest.raises(ValueError, match=why):
        box.add_observation(code, value, unit, at)
    feed_fever(box, at)
    box.step()
    box.url = live_server.url
    report = box.flush_once()
    assert (report.delivered, report.dead_lettered) == (2, 0)
    assert Observation.objects.count() == 2
    assert "temperature_high" in box.alarm_log.getvalue()
