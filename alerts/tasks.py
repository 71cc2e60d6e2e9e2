"""Periodic alert work (celery beat, or run_periodic in the embedded default)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task
def detect_stale_devices() -> int:
    return services.detect_stale_devices()


@shared_task
def escalate_due_alerts() -> int:
    return services.escalate_due_alerts()
