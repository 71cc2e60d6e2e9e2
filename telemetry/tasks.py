"""Celery tasks: take ids, load, call the service, return. Safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import processing, retention, services

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
    # A pool child that dies mid-task (the OOM killer, a crash in native code)
    # would otherwise lose the task until the sweep, a minute or more later: an
    # alarm held that long. Send it again at once, to the queue it came from;
    # max_retries bounds a batch that kills every child that takes it (the sweep
    # still tries it once a minute after that). Tasks are idempotent.
    retry_on_worker_lost=True,
    default_retry_delay=0,  # only the worker-lost retry uses it (backoff above)
)
def process_batch(batch_pk: int) -> None:
    processing.process_batch(batch_pk)


@shared_task
def sweep_unprocessed_batches() -> int:
    return services.requeue_stale_batches()


@shared_task
def apply_retention() -> dict[str, int]:
    """Summarise and drop vital signs, drop ECG, past their retention (bounded)."""
    report = retention.apply_retention()
    return {
        "vitals_dropped": report.vitals_dropped,
        "summaries_written": report.summaries_written,
        "ecg_dropped": report.ecg_dropped,
    }
