from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from rpm.celery import app

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Run the periodic tasks of CELERY_BEAT_SCHEDULE in this process: the embedded "
        "default's stand-in for celery beat (production runs celery beat)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run every task once")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.TASKS_IN_PROCESS:
            raise CommandError("REDIS_URL is set: run `celery -A rpm beat` instead")
        app.loader.import_default_modules()
        schedule = {
            name: (entry["task"], float(entry["schedule"]))
            for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        }
        due = dict.fromkeys(schedule, 0.0)
        while True:
            for name, (task, interval) in schedule.items():
                if time.monotonic() >= due[name]:
                    self._run(name, task)
                    due[name] = time.monotonic() + interval
            if options["once"]:
                return
            time.sleep(1)

    def _run(self, name: str, task: str) -> None:
        result = app.tasks[task].apply()
        if result.failed():
            log.error("periodic task %s failed: %r", name, result.result)
