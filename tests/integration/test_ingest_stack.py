"""Uploads through a real Daphne into PostgreSQL, processed by a real Celery worker."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from telemetry.models import Batch, Observation
from tests.test_telemetry_ingest import batch, obs

from .stack import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/telemetry/batches"


def upload(stack, token: str, body: dict):
    return stack.session().post(
        stack.base_url + URL,
        json=body,
        timeout=20,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_an_upload_is_stored_and_processed_by_the_worker(stack, device):
    response = upload(stack, device.token, batch())
    assert response.status_code == 201, response.text
    wait_until(
        lambda: Batch.objects.filter(state=Batch.State.PROCESSED).exists(),
        30,
        lambda: "the worker did not process the batch:\n" + stack.worker.log()[-3000:],
    )


def test_concurrent_retries_of_one_batch_store_it_once(stack, device):
    body = batch()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: upload(stack, device.token, body), range(8)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 7 + [201], [a.text for a in answers]
    assert {a.json()["batch_id"] for a in answers} == {body["batch_id"]}
    assert Batch.objects.count() == 1
    assert Observation.objects.count() == len(body["observations"])


def test_a_batch_whose_task_was_lost_is_swept_and_processed(stack, device):
    stack.worker.stop()
    try:
        assert upload(stack, device.token, batch()).status_code == 201
        time.sleep(0.5)
        stored = Batch.objects.get()
        assert stored.state == Batch.State.PENDING
        # The queued task is lost with the broker's queue; the database still knows.
        stack.flush_queue()
        Batch.objects.update(queued_at=stored.queued_at.replace(year=2000))
    finally:
        stack.start_worker()
    from telemetry.tasks import sweep_unprocessed_batches

    stack.run_task(sweep_unprocessed_batches)
    wait_until(
        lambda: Batch.objects.get().state == Batch.State.PROCESSED,
        30,
        lambda: "the swept batch was not processed:\n" + stack.worker.log()[-3000:],
    )
    assert Batch.objects.get().queue_count == 2


def test_uploads_reuse_the_servers_redis_connections(stack, device):
    """The per-device throttle reads Redis on every upload. Django keeps a cache
    object per thread and ASGI runs every request on a new thread, so before
    rpm.redis_pool each upload opened a Redis connection of its own."""
    server = redis.Redis.from_url(stack.env["REDIS_URL"])
    stack.worker.stop()  # count Daphne's connections only
    try:
        assert upload(stack, device.token, batch()).status_code == 201  # warm pool
        before = server.info("stats")["total_connections_received"]
        for _ in range(30):
            assert upload(stack, device.token, batch()).status_code == 201
        opened = server.info("stats")["total_connections_received"] - before
    finally:
        stack.start_worker()
    assert opened < 5, f"{opened} Redis connections opened for 30 uploads"


def test_a_batch_with_an_alarming_reading_overtakes_a_backlog(stack, device):
    """Triage: with 20 routine batches waiting, a fever is processed first."""
    stack.worker.stop()
    try:
        for _ in range(20):
            assert upload(stack, device.token, batch(ecg=[])).status_code == 201
        fever = batch(ecg=[], observations=[obs("8310-5", 39.8, "Cel")])
        assert upload(stack, device.token, fever).status_code == 201
    finally:
        stack.start_worker()
    wait_until(
        lambda: not Batch.objects.filter(state=Batch.State.PENDING).exists(),
        60,
        lambda: "the backlog was not processed:\n" + stack.worker.log()[-3000:],
    )
    order = list(
        Batch.objects.order_by("processed_at").values_list("batch_id", flat=True)
    )
    assert len(order) == 21
    # First, or second if the other worker process took a routine batch at once.
    assert str(fever["batch_id"]) in map(str, order[:2]), order
