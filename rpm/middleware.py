"""Per request: a request ID for the logs, a latency observation, an access line.

Outermost in MIDDLEWARE, so the time covers every other middleware and even a
redirect or a refusal carries its request ID. Both sync and async capable, so
under Daphne it adds no thread hop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from . import logs, metrics

log = logging.getLogger("rpm.request")

# Probes and scrapes come every few seconds: timed, but not logged.
QUIET_ROUTES = frozenset({"healthz", "readyz", "metrics", "static"})
# Anything else is "other": a label value per invented method would be a new series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Handler = Callable[[HttpRequest], HttpResponse]
AsyncHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class RequestObservabilityMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Handler | AsyncHandler):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self._acall(request)
        self._begin(request)
        started = time.perf_counter()
        response = self.get_response(request)
        return self._end(request, response, started)  # type: ignore[arg-type]

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        self._begin(request)
        started = time.perf_counter()
        response = await self.get_response(request)  # type: ignore[misc]
        return self._end(request, response, started)

    def _begin(self, request: HttpRequest) -> None:
        request_id = logs.adopt_request_id(request.headers.get(logs.REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        # Not reset on the way out: Django logs a refused request after the
        # middleware returned, and that line needs the ID too. Daphne runs each
        # request in a context of its own; a thread reusing the ID until its next
        # request sets another is harmless.
        logs.bind_request_id(request_id)

    def _end(
        self, request: HttpRequest, response: HttpResponse, started: float
    ) -> HttpResponse:
        seconds = time.perf_counter() - started
        route = route_name(request)
        method = request.method if request.method in METHODS else "other"
        metrics.observe_request(route, method, response.status_code, seconds)
        response[logs.REQUEST_ID_HEADER] = request.request_id  # type: ignore[attr-defined]
        if route not in QUIET_ROUTES:
            log.info(
                "%s %s %s",
                method,
                route,
                response.status_code,
                extra={
                    "route": route,
                    "method": method,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
        return response


def route_name(request: HttpRequest) -> str:
    """The URL pattern's name (``telemetry-batches``), never the raw path, which
    holds ids and would make one time series per patient."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        # WhiteNoise answers static files before any URL is resolved.
        static = settings.STATIC_URL
        return (
            "static"
            if request.path.startswith(f"/{static.lstrip('/')}")
            else "unmatched"
        )
    return match.view_name or match.route or "unnamed"
