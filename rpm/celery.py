"""The Celery application: broker and task settings come from rpm.settings.

Its signals carry a request's ID to the tasks it queues (a message header), time
every task for the metrics, keep Celery from replacing the logging that
rpm.settings configures (JSON lines, with the request ID), and load the ECG
analysis in a worker before it forks its pool.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rpm.settings")

app = Celery("rpm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

log = logging.getLogger("rpm.tasks")

PUBLISHED_AT_HEADER = "rpm_published_at"
# task id -> (context tokens, start time); a worker child runs one task at a time,
# an eager task runs inside its caller, so this stays tiny.
_running: dict[str, tuple[tuple[Any, Any], float]] = {}


@signals.setup_logging.connect
def _use_django_logging(**kwargs: Any) -> None:
    """With a receiver here Celery leaves the root logger alone; configure it from
    settings.LOGGING, as every other process does."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@signals.before_task_publish.connect
def _stamp_message(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    from . import logs

    if headers is None:
        return
    headers[PUBLISHED_AT_HEADER] = time.time()
    request_id = logs.current_request_id()
    if request_id:
        headers[logs.TASK_HEADER] = request_id


@signals.task_prerun.connect
def _enter_task(task_id: str, task: Any, **kwargs: Any) -> None:
    from . import logs, metrics

    # A worker reads the header; an eager task already runs in its caller's context.
    request_id = task.request.get(logs.TASK_HEADER) or logs.current_request_id()
    tokens = (
        logs.request_id_var.set(request_id),
        logs.task_var.set((task_id, task.name)),
    )
    _running[task_id] = (tokens, time.perf_counter())
    published_at = task.request.get(PUBLISHED_AT_HEADER)
    waited = time.time() - float(published_at) if published_at else None
    metrics.task_started(task.name, waited)


@signals.task_postrun.connect
def _leave_task(
    task_id: str, task: Any, state: str | None = None, **kwargs: Any
) -> None:
    from . import logs, metrics

    entry = _running.pop(task_id, None)
    ran = time.perf_counter() - entry[1] if entry else None
    metrics.task_finished(task.name, state or "UNKNOWN", ran)
    log.info(
        "task %s %s",
        task.name,
        state,
        extra={"state": state, "duration_ms": round((ran or 0) * 1000, 1)},
    )
    if entry:
        request_token, task_token = entry[0]
        logs.task_var.reset(task_token)
        logs.request_id_var.reset(request_token)


@signals.worker_init.connect
def _serve_worker_metrics(**kwargs: Any) -> None:
    from django.conf import settings

    if settings.WORKER_METRICS_PORT:
        from .exposition import serve_worker_metrics

        serve_worker_metrics(
            settings.WORKER_METRICS_PORT, settings.WORKER_METRICS_ADDRESS
        )


@signals.worker_init.connect
def _preload_ecg_analysis(**kwargs: Any) -> None:
    """Import the ECG analysis (NeuroKit2, about 2 s) in the worker's main process,
    before it forks its pool: neither the first ECG after a start nor the first
    after a child's replacement waits for it. Web processes never import it."""
    started = time.perf_counter()
    from telemetry import analysis

    analysis.preload()
    log.info("ECG analysis loaded in %.1f s", time.perf_counter() - started)
