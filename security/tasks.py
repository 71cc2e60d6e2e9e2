"""Periodic security work."""

from __future__ import annotations

from celery import shared_task

from . import kme, services


@shared_task
def run_qkd_link() -> int:
    """One emulated QKD session of the default link; returns keys added."""
    return services.run_link(kme.default_link()).keys_added
