"""What the admins' security page shows: the emulated QKD link, its recent runs,
the key pools and the eavesdropping alerts. Only figures stored in the database
(or computed by the QKD theory module) are shown; nothing is filled in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q

from alerts.models import Alert
from security import kme
from security.models import QkdLink, QkdRun, Sae
from security.qkd import LinkParams, key_rate_series
from security.services import QBER_ABORT

RUNS_SHOWN = 100
EVENTS_SHOWN = 50
EAVESDROPPING = "qkd_eavesdropping"


@dataclass(frozen=True)
class Pool:
    slave_sae: str
    stored: int
    capacity: int

    @property
    def percent(self) -> int:
        return round(100 * self.stored / self.capacity) if self.capacity else 0


def current_link() -> QkdLink | None:
    """The link the KME uses ("default"), else the first one; None if none yet."""
    links = QkdLink.objects.order_by("pk")
    return links.filter(name="default").first() or links.first()


def recent_runs(link: QkdLink | None) -> list[QkdRun]:
    """The link's last runs, oldest first."""
    if link is None:
        return []
    runs = QkdRun.objects.filter(link=link).order_by("-at")[:RUNS_SHOWN]
    return list(reversed(runs))


def pools() -> list[Pool]:
    """Undelivered keys per slave SAE of the server's pools, against the cap."""
    master = settings.QKD_SERVER_SAE_ID
    counts = kme.pool_sizes(master)
    slaves = set(Sae.objects.exclude(sae_id=master).values_list("sae_id", flat=True))
    cap = settings.QKD_MAX_KEY_COUNT
    return [Pool(s, counts.get(s, 0), cap) for s in sorted(slaves | set(counts))]


def eavesdropping_alerts(user) -> list[Alert]:
    visible = Q(organisation__isnull=True) | Q(organisation_id=user.organisation_id)
    return list(
        Alert.objects.filter(visible, kind=EAVESDROPPING).order_by("-raised_at")[
            :EVENTS_SHOWN
        ]
    )


def _positive(values) -> list[float | None]:
    """Rates for a log axis: zero (no key) has no place on it, so it is a gap."""
    return [float(v) if v > 0 else None for v in values]


def _run_distance(run: QkdRun) -> float:
    """The distance the run was emulated at (its report), else the link's."""
    params = (run.report or {}).get("params") or {}
    distance = params.get("distance_km")
    return float(distance) if distance is not None else run.link.distance_km


def chart_data(link: QkdLink | None, runs: list[QkdRun]) -> dict[str, Any]:
    """The series of the page's charts (JSON)."""
    curve = key_rate_series(LinkParams())
    return {
        "link": None
        if link is None
        else {
            "name": link.name,
            "distance_km": link.distance_km,
            "status": link.status,
            "compromised_since": link.compromised_since,
        },
        "qber_abort": QBER_ABORT,
        "runs": {
            "t": [r.at.timestamp() for r in runs],
            "qber": [r.qber for r in runs],
            "key_rate_per_pulse": [r.key_rate_per_pulse for r in runs],
            "final_key_bits": [r.final_key_bits for r in runs],
            "aborted": [r.aborted for r in runs],
            "distance_km": [_run_distance(r) for r in runs],
        },
        "distance": {
            "distance_km": curve.distance_km.tolist(),
            "theory": _positive(curve.theory),
            # What the link's own protocol (vacuum + one weak decoy) can certify.
            "vacuum_weak": _positive(curve.vacuum_weak),
            "plob": _positive(curve.plob),
            "theory_max_distance_km": curve.theory_max_distance_km,
        },
    }
