"""Structured logs: one JSON object per line, carrying the request ID.

The request ID lives in a context variable. The request middleware sets it (from a
well-formed ``X-Request-ID`` or a new one); Celery carries it in a message header
to the tasks a request queues (rpm/celery.py), so a worker's log lines and the
alerts a task raises name the upload that caused them. Log calls pass ids, never
clinical values or names: this module adds no patient data of its own.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("rpm_request_id", default=None)
task_var: ContextVar[tuple[str, str] | None] = ContextVar("rpm_task", default=None)

# Letters, digits and . _ - (a UUID, a proxy's hex id): nothing a log reader or a
# header could misread, and short enough that nobody smuggles data in through it.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{8,128}")
REQUEST_ID_HEADER = "X-Request-ID"
# The Celery message header that carries the request ID to the worker.
TASK_HEADER = "rpm_request_id"

# What every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
    "task_id",
    "task_name",
}


def well_formed(candidate: str | None) -> bool:
    return bool(candidate) and REQUEST_ID_PATTERN.fullmatch(candidate) is not None


def new_request_id() -> str:
    return uuid.uuid4().hex


def adopt_request_id(candidate: str | None) -> str:
    """The caller's ID if it is well formed, else a new one."""
    return candidate if well_formed(candidate) else new_request_id()


def bind_request_id(request_id: str | None) -> Token:
    return request_id_var.set(request_id)


def current_request_id() -> str | None:
    return request_id_var.get()


class ContextFilter(logging.Filter):
    """Put the request ID and the running task on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        task = task_var.get()
        record.task_id, record.task_name = task if task else (None, None)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context, and
    whatever the call passed in ``extra``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("request_id", "task_id", "task_name"):
            if getattr(record, name, None):
                entry[name] = getattr(record, name)
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """For a developer's terminal (DEBUG): the usual line, with the request ID."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(rid)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.rid = getattr(record, "request_id", None) or "-"
        return super().format(record)


def logging_config(*, fmt: str, level: str) -> dict[str, Any]:
    """The LOGGING setting: every record through the context filter to stderr."""
    formatter = "rpm.logs.JsonFormatter" if fmt == "json" else "rpm.logs.PlainFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "rpm.logs.ContextFilter"},
            "dropped_pushes": {"()": "rpm.metrics.CountDroppedPushes", "level": level},
        },
        "formatters": {"main": {"()": formatter}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        # channels-redis logs a push dropped to a full channel only at INFO:
        # rpm_live_pushes_dropped_total counts it whatever the level above.
        "loggers": {
            "channels_redis.core": {"level": "INFO", "filters": ["dropped_pushes"]}
        },
    }
