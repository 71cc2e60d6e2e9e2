"""Celery tasks: take ids, load, call the service, return. Safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import processing, retention, services

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(
    autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=60, max_retries=8
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
