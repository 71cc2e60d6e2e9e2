"""When no database connection comes free: 503 with Retry-After, not 500.

Django's connection pool raises OperationalError (caused by PoolTimeout) when a
request waits longer than the pool's timeout. A request takes its connection at
its first query, so it has done nothing yet and may simply be sent again. The
device upload API answers this itself (telemetry.api.DeviceView); everything
else (clinician APIs, pages, the admin) reaches ``server_error``, Django's
handler500, which turns this one cause into a 503. It runs with DEBUG off only:
with DEBUG on, Django shows its technical 500 page instead.
"""

from __future__ import annotations

import sys

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from psycopg_pool import PoolTimeout

from telemetry.problems import problem

BUSY_RETRY_AFTER_S = 2


def database_busy(exc: BaseException | None) -> bool:
    """No database connection came free in time (and nothing else went wrong)."""
    return isinstance(exc, OperationalError) and isinstance(exc.__cause__, PoolTimeout)


def busy(detail: str) -> JsonResponse:
    """The 503 problem, with Retry-After: ``detail`` says what to send again."""
    return problem(
        503,
        "busy",
        "Service Unavailable",
        f"the server is at capacity and {detail} again after {BUSY_RETRY_AFTER_S} "
        "seconds",
        headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
    )


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls handler500 inside its except block: exc_info is the error.
    if not database_busy(sys.exc_info()[1]):
        return defaults.server_error(request)
    if request.path.startswith("/api/"):
        return busy("did nothing: send the same request")
    response = HttpResponse(
        "The service is busy. Reload this page in a few seconds.",
        status=503,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(BUSY_RETRY_AFTER_S)
    return response
