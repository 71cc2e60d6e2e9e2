"""Celery tasks: take ids, load, call the service, return. Safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import processing, services

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(
    autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=60, max_retries=8
)
def process_batch(batch_pk: int) -> None:
    processing.process_batch(batch_pk)


@shared_task
def sweep_unprocessed_batches() -> int:
    return services.requeue_stale_batches()
