"""Counters and histograms that processes write as things happen.

Daphne processes and Celery workers are separate processes, so with
``PROMETHEUS_MULTIPROC_DIR`` set (rpm/settings.py sets it whenever tasks run in
workers) prometheus-client keeps every value in a per-process file in that
directory, and ``/metrics`` adds them up (rpm/exposition.py). Figures that the
database already knows (backlog, open alerts, devices, QKD) are not counted here:
they are read at scrape time (rpm/collectors.py), so they are right whichever
process changed them.

Every hook is a few dictionary lookups and a write to a memory map: cheap enough
for the upload path.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from django.http import HttpResponse
from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
ALERT_DELAY_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)

UPLOADS = Counter(
    "rpm_uploads",
    "Device uploads answered, by outcome: stored, duplicate, or the problem type "
    "of the refusal (invalid-batch, too-large, rate-limited, replayed, ...)",
    ["outcome"],
)
READINGS = Counter(
    "rpm_readings_ingested",
    "Readings stored from device uploads (each counted once, retries not)",
    ["type"],
)
REQUEST_LATENCY = Histogram(
    "rpm_http_request_duration_seconds",
    "Time to answer an HTTP request, by route name, method and status class",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
TASKS = Counter(
    "rpm_tasks", "Celery tasks finished, by task and state", ["task", "state"]
)
TASK_RUNTIME = Histogram(
    "rpm_task_duration_seconds",
    "Time a Celery task ran",
    ["task"],
    buckets=TASK_BUCKETS,
)
TASK_WAIT = Histogram(
    "rpm_task_queue_wait_seconds",
    "Time from queueing a task to a worker starting it",
    ["task"],
    buckets=TASK_BUCKETS,
)
WEBSOCKETS = Gauge(
    "rpm_websocket_connections",
    "Open WebSocket connections, by stream (staff alerts, patient)",
    ["stream"],
    # Summed over the live processes; a dead process's share is dropped at the
    # next scrape (rpm/exposition.py).
    multiprocess_mode="livesum",
)
ALERTS_RAISED = Counter(
    "rpm_alerts_raised", "Alerts raised, by kind and priority", ["kind", "priority"]
)
ALERT_DELAY = Histogram(
    "rpm_alert_raise_delay_seconds",
    "Physiological alerts: from the measurement time of the reading that raised the "
    "alert to the alert being raised (device buffering, upload and processing; "
    "not the rule's own persistence delay)",
    ["kind"],
    buckets=ALERT_DELAY_BUCKETS,
)

PUSHES_DROPPED = Counter(
    "rpm_live_pushes_dropped",
    "Live pushes the channel layer dropped because a socket's channel was full "
    "(CHANNEL_CAPACITY); the alert panel recovers them at its next heartbeat",
    ["stream"],
)
# channels-redis reports such drops only as this log message (channels_redis/core.py).
OVER_CAPACITY = "%s of %s channels over capacity in group %s"


class CountDroppedPushes(logging.Filter):
    """On the ``channels_redis.core`` logger: counts the pushes its group sends
    dropped, and lets its records through only from ``level`` up (the logger is
    kept at INFO so that a drop is counted whatever LOG_LEVEL says)."""

    def __init__(self, level: str = "INFO") -> None:
        super().__init__()
        self.level = logging.getLevelName(level)

    def filter(self, record: logging.LogRecord) -> bool:
        # Once per record: logging set up twice in a process (a Celery worker's
        # own setup signal) leaves two of these filters on the logger.
        counted = getattr(record, "rpm_counted", False)
        if record.msg == OVER_CAPACITY and isinstance(record.args, tuple):
            if not counted:
                dropped, _, group = record.args
                PUSHES_DROPPED.labels(stream_of(str(group))).inc(int(dropped))
            record.rpm_counted = True
        return record.levelno >= self.level


def count_upload(response: HttpResponse) -> None:
    """Count a device upload's answer: 201 stored, 200 duplicate, else the kind of
    problem the refusal names."""
    status = response.status_code
    if status == 201:
        outcome = "stored"
    elif status == 200:
        outcome = "duplicate"
    else:
        outcome = _problem_kind(response) or f"http-{status}"
    UPLOADS.labels(outcome).inc()


def _problem_kind(response: HttpResponse) -> str | None:
    # Only refusals get here, and their bodies are a few hundred bytes.
    if not response.get("Content-Type", "").startswith("application/problem+json"):
        return None
    try:
        kind = json.loads(response.content).get("type", "")
    except (ValueError, AttributeError):
        return None
    return kind.rsplit("/", 1)[-1] or None


def count_readings(*, observations: int, ecg_segments: int) -> None:
    READINGS.labels("vital").inc(observations)
    READINGS.labels("ecg_segment").inc(ecg_segments)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    REQUEST_LATENCY.labels(route, method, f"{status // 100}xx").observe(seconds)


def stream_of(group: str) -> str:
    """The metrics label of a live stream's channel group ("staff.7" → "staff"):
    the stream, never the id."""
    return group.split(".", 1)[0]


def websocket_opened(group: str) -> None:
    WEBSOCKETS.labels(stream_of(group)).inc()


def websocket_closed(group: str) -> None:
    WEBSOCKETS.labels(stream_of(group)).dec()


def task_started(task: str, waited_s: float | None) -> None:
    if waited_s is not None:
        TASK_WAIT.labels(task).observe(max(waited_s, 0.0))


def task_finished(task: str, state: str, ran_s: float | None) -> None:
    TASKS.labels(task, state).inc()
    if ran_s is not None:
        TASK_RUNTIME.labels(task).observe(ran_s)


def alert_raised(
    *, kind: str, category: str, priority: str, data_time: datetime, at: datetime
) -> None:
    ALERTS_RAISED.labels(kind, priority).inc()
    # Only physiological alerts come from a measured reading; technical and
    # security findings are timed by the server's own clock.
    if category == "physiological":
        ALERT_DELAY.labels(kind).observe(max((at - data_time).total_seconds(), 0.0))
