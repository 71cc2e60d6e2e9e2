from __future__ import annotations

import time

import pytest
from django.db import connection

from .stack import build_stack, wait_until


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """Daphne and a Celery worker, up for the whole integration session."""
    with django_db_blocker.unblock():
        db_name = connection.settings_dict["NAME"]
    running = build_stack(tmp_path_factory.mktemp("stack"), db_name)
    try:
        running.start_daphne()
        running.start_worker()
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def _worker_settles(request):
    """After a test on the stack, let the worker finish what the test queued before
    the test database is emptied: TRUNCATE beside a task still writing deadlocks."""
    yield
    if "stack" not in request.fixturenames:
        return
    stack = request.getfixturevalue("stack")
    wait_until(
        lambda: stack.queue_length() == 0 and not _pending_batches(),
        30,
        "the worker did not settle",
    )
    time.sleep(0.5)  # the task that took the last batch is finishing its commit


def _pending_batches() -> bool:
    from telemetry.models import Batch

    return Batch.objects.filter(state=Batch.State.PENDING).exists()
