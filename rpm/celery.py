"""The Celery application: broker and task settings come from rpm.settings."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rpm.settings")

app = Celery("rpm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
