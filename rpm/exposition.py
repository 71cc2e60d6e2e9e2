"""``/metrics``: the Prometheus text format, for a bearer token or an admin.

In multi-process mode (``PROMETHEUS_MULTIPROC_DIR``) the answer adds up the files
of every process that shares the directory (this host's Daphne processes and Celery
workers), then appends the gauges read from the database at scrape time.
"""

from __future__ import annotations

import glob
import hmac
import os
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .collectors import DatabaseCollector


@require_safe
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = refuse(request)
    if refusal is not None:
        return refusal
    output = generate_latest(Combined([process_metrics(), DatabaseCollector()]))
    return HttpResponse(output, content_type=CONTENT_TYPE_LATEST)


def refuse(request: HttpRequest) -> HttpResponse | None:
    """None when the caller may read metrics: ``Authorization: Bearer
    METRICS_TOKEN``, or a signed-in staff member (the admin console's users)."""
    if _token_matches(request.headers.get("Authorization", "")):
        return None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return None if user.is_staff else HttpResponse("forbidden\n", status=403)
    response = HttpResponse("a metrics token or an admin session is needed\n")
    response.status_code = 401
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def _token_matches(header: str) -> bool:
    expected = settings.METRICS_TOKEN
    scheme, _, presented = header.partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


class Combined:
    """A registry-like object: ``generate_latest`` only calls ``collect``."""

    def __init__(self, collectors: Iterable[Collector | CollectorRegistry]):
        self.collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def process_metrics() -> CollectorRegistry:
    directory = multiproc_dir()
    if not directory:
        return REGISTRY  # one process: its own values, plus process_* metrics
    forget_dead_processes(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return registry


def multiproc_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def forget_dead_processes(directory: str) -> None:
    """Drop the live gauges (open WebSockets) of processes that died without
    saying so: Daphne has no hook to run on a crash or a SIGKILL."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = os.path.basename(path).rsplit("_", 1)[-1].removesuffix(".db")
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def serve_worker_metrics(port: int, address: str) -> None:
    """For a host that runs only Celery workers (no Daphne to scrape): serve this
    host's multi-process metrics, without the database gauges, on ``port``."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=address, registry=process_metrics())
