"""``/healthz`` (the process answers) and ``/readyz`` (it can do its work).

Both are unauthenticated and cheap, for load balancers, orchestrators and deploy
scripts. ``/readyz`` answers 503 naming each failed check; its body says which
kind of error, never the error's text (host names, ports), which goes to the log.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypedDict

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from telemetry.models import Batch

log = logging.getLogger(__name__)

# The sweep's definition: pending this long after its last queueing, it is late.
OVERDUE_AFTER = timedelta(minutes=1)


class CheckResult(TypedDict, total=False):
    ok: bool | None  # None: not run, because a check it depends on failed
    ms: float
    error: str
    detail: dict[str, Any]


class CheckFailed(Exception):
    """A check ran and found the dependency not ready (not an exception of it)."""

    def __init__(self, message: str, detail: dict[str, Any] | None = None):
        super().__init__(message)
        self.detail = detail or {}


@require_safe
@never_cache
async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks = run_checks()
    failed = [name for name, result in checks.items() if result["ok"] is False]
    body = {"status": "fail" if failed else "ok", "failed": failed, "checks": checks}
    return JsonResponse(body, status=503 if failed else 200)


def run_checks() -> dict[str, CheckResult]:
    checks = {
        "database": timed(check_database),
        "channel_layer": timed(check_channel_layer),
        "broker": timed(check_broker),
    }
    needs_database: dict[str, Callable[[], dict[str, Any]]] = {
        "migrations": check_migrations,
        "backlog": check_backlog,
    }
    for name, check in needs_database.items():
        checks[name] = (
            timed(check)
            if checks["database"]["ok"]
            else {"ok": None, "error": "skipped: the database is unreachable"}
        )
    return checks


def timed(check: Callable[[], dict[str, Any]]) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = check()
    except CheckFailed as failure:
        result: CheckResult = {"ok": False, "error": str(failure)}
        if failure.detail:
            result["detail"] = failure.detail
    except Exception as error:  # any failure of a dependency means "not ready"
        log.warning("readiness check %s failed", check.__name__, exc_info=True)
        result = {"ok": False, "error": type(error).__name__}
    else:
        result = {"ok": True}
        if detail:
            result["detail"] = detail
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def check_channel_layer() -> dict[str, Any]:
    layer = get_channel_layer()
    if layer is None:
        raise CheckFailed("no channel layer is configured")
    async_to_sync(_round_trip)(layer, settings.READY_CHECK_TIMEOUT_S)
    return {"backend": type(layer).__name__}


async def _round_trip(layer: Any, timeout: float) -> None:
    """Send a message to a channel of our own and read it back: what every alert
    push to a browser needs."""

    async def go() -> None:
        channel = await layer.new_channel("readyz.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "readyz.ping", "token": token})
        message = await layer.receive(channel)
        if message.get("token") != token:
            raise CheckFailed("the channel layer returned another message")

    try:
        await asyncio.wait_for(go(), timeout)
    except TimeoutError:
        raise CheckFailed(f"no answer within {timeout:g} s") from None


def check_broker() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"broker": "none: tasks run in-process"}
    broker_client(settings.REDIS_URL).ping()
    return {}


@functools.lru_cache(maxsize=4)
def broker_client(url: str | None = None) -> redis.Redis:
    """One client (and connection pool) per process; short timeouts, so a dead
    broker fails a probe instead of hanging it."""
    timeout = settings.READY_CHECK_TIMEOUT_S
    return redis.Redis.from_url(
        url or settings.REDIS_URL,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
    )


def check_migrations() -> dict[str, Any]:
    # The migration files cannot change under a running process: read them once,
    # then it is one query for what the database has applied.
    applied = set(MigrationRecorder(connection).applied_migrations())
    unapplied = sorted(f"{app}.{name}" for app, name in migration_files() - applied)
    if unapplied:
        raise CheckFailed(
            f"{len(unapplied)} migration(s) not applied: run `manage.py migrate`",
            {"unapplied": unapplied[:20]},
        )
    return {}


@functools.cache
def migration_files() -> frozenset[tuple[str, str]]:
    """Every migration this code has, squashed ones in place of those they replace."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def check_backlog() -> dict[str, Any]:
    limit = settings.READY_BACKLOG_LIMIT
    cutoff = timezone.now() - OVERDUE_AFTER
    # Counts at most limit + 1 rows through the partial index on pending batches.
    overdue = (
        Batch.objects.filter(state=Batch.State.PENDING, queued_at__lt=cutoff)
        .values("pk")[: limit + 1]
        .count()
    )
    detail = {"overdue": overdue, "limit": limit}
    if overdue > limit:
        raise CheckFailed(
            f"more than {limit} batches wait over a minute for analysis", detail
        )
    return detail
