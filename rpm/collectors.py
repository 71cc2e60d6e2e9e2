"""Gauges read at scrape time from the database and the broker.

The database is the source of truth for the backlog, open alerts, devices and the
QKD link, and any process may change them; reading them when Prometheus asks is
right in every process arrangement, where a gauge kept by one process would not
be. Every query is served by an index or touches a small table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from alerts.models import Alert
from patients.models import Device
from security import kme
from security.models import QkdLink, QkdRun, Sae
from telemetry.models import Batch

from .health import OVERDUE_AFTER, broker_client

log = logging.getLogger(__name__)

# kombu's Redis transport keeps one list per priority step of a queue.
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"

Families = Iterator[GaugeMetricFamily]


class DatabaseCollector(Collector):
    """Backlog, open alerts, devices and the QKD link, from the database."""

    def collect(self) -> Families:
        up = GaugeMetricFamily(
            "rpm_metrics_source_up",
            "1 if the scrape could read this source, 0 if it failed",
            labels=["source"],
        )
        sources: list[tuple[str, Callable[[], list[GaugeMetricFamily]]]] = [
            ("database", self._database),
            ("broker", self._broker),
        ]
        for name, read in sources:
            try:
                families = read()
            except Exception:  # a failing source must not hide the others
                log.warning("metrics: could not read %s", name, exc_info=True)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up

    def _database(self) -> list[GaugeMetricFamily]:
        return [*backlog(), alerts_open(), devices(), *qkd()]

    def _broker(self) -> list[GaugeMetricFamily]:
        return [queue_length()] if settings.REDIS_URL else []


def backlog() -> list[GaugeMetricFamily]:
    # Both counts use the partial index on pending batches (batch_pending_queued).
    cutoff = timezone.now() - OVERDUE_AFTER
    counts = Batch.objects.filter(state=Batch.State.PENDING).aggregate(
        pending=Count("pk"), overdue=Count("pk", filter=Q(queued_at__lt=cutoff))
    )
    return [
        GaugeMetricFamily(
            "rpm_batches_pending",
            "Uploaded batches waiting for analysis",
            value=counts["pending"],
        ),
        GaugeMetricFamily(
            "rpm_batches_overdue",
            f"Batches pending more than {OVERDUE_AFTER.seconds} s after their last "
            "queueing (what the sweep re-queues)",
            value=counts["overdue"],
        ),
    ]


def alerts_open() -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "rpm_alerts_open",
        "Open alerts (active or acknowledged), by kind, state and priority",
        labels=["kind", "state", "priority"],
    )
    # The partial unique index on open alerts covers "state <> 'resolved'".
    rows = (
        Alert.objects.exclude(state=Alert.State.RESOLVED)
        .values("kind", "state", "priority")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        family.add_metric([row["kind"], row["state"], row["priority"]], row["n"])
    return family


def devices() -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "rpm_devices",
        "Active devices assigned to a patient: online, stale (overdue), never seen",
        labels=["state"],
    )
    states = {
        "online": Q(stale=False, last_seen_at__isnull=False),
        "stale": Q(stale=True),
        "never_seen": Q(last_seen_at__isnull=True),
    }
    counts = Device.objects.filter(
        status=Device.Status.ACTIVE, patient__isnull=False
    ).aggregate(**{f"n_{state}": Count("pk", filter=q) for state, q in states.items()})
    for state in states:
        family.add_metric([state], counts[f"n_{state}"])
    return family


def qkd() -> list[GaugeMetricFamily]:
    up = GaugeMetricFamily("rpm_qkd_link_up", "1 up, 0 compromised", labels=["link"])
    qber = GaugeMetricFamily(
        "rpm_qkd_qber", "QBER of the link's latest run", labels=["link"]
    )
    rate = GaugeMetricFamily(
        "rpm_qkd_key_rate_per_pulse",
        "Secret key rate per pulse of the latest run (0 when it aborted)",
        labels=["link"],
    )
    last = GaugeMetricFamily(
        "rpm_qkd_last_run_timestamp_seconds",
        "When the link last ran (Unix time)",
        labels=["link"],
    )
    for link in QkdLink.objects.all():
        up.add_metric([link.name], int(link.status == QkdLink.Status.UP))
        run = QkdRun.objects.filter(link=link).order_by("-at").first()  # qkdrun_link_at
        if run is not None:
            rate.add_metric([link.name], run.key_rate_per_pulse)
            last.add_metric([link.name], run.at.timestamp())
            if run.qber is not None:
                qber.add_metric([link.name], run.qber)
    return [up, qber, rate, last, *key_pools()]


def key_pools() -> list[GaugeMetricFamily]:
    """Pool levels without one series per device: keys in stock, and how many
    SAE pairs have an empty pool (those devices cannot open a sealed session)."""
    master = settings.QKD_SERVER_SAE_ID
    stocked = kme.pool_sizes(master)
    slaves = Sae.objects.exclude(sae_id=master).count()
    return [
        GaugeMetricFamily(
            "rpm_qkd_keys_available",
            "Undelivered keys in all pools of the server SAE",
            value=sum(stocked.values()),
        ),
        GaugeMetricFamily(
            "rpm_qkd_pools_empty",
            "SAE pairs whose key pool is empty",
            value=max(slaves - len(stocked), 0),
        ),
        GaugeMetricFamily(
            "rpm_qkd_pool_max_keys",
            "Pool size each SAE pair is filled to (QKD_MAX_KEY_COUNT)",
            value=settings.QKD_MAX_KEY_COUNT,
        ),
    ]


def queue_length() -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "rpm_task_queue_length",
        "Tasks waiting in the broker, by queue",
        labels=["queue"],
    )
    client = broker_client(settings.REDIS_URL)
    for queue in task_queues():
        names = [_priority_list(queue, step) for step in KOMBU_PRIORITY_STEPS]
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(name)
            family.add_metric([queue], sum(pipe.execute()))
    return family


def task_queues() -> list[str]:
    from rpm.celery import app

    return sorted({queue.name for queue in app.amqp.queues.values()}) or [
        app.conf.task_default_queue
    ]


def _priority_list(queue: str, step: int) -> str:
    return queue if step == 0 else f"{queue}{KOMBU_PRIORITY_SEPARATOR}{step}"
