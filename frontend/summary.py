"""What the dashboard shows of a patient at a glance: NEWS2, open alerts, latest
vitals, device status and RPM adherence, read for a whole ward in a few queries."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from alerts.models import Alert
from alerts.rules import BATTERY_LOW_PCT, PRIORITY_RANK
from patients.models import Device, Patient
from telemetry import contract as c
from telemetry.models import Batch, EcgAnalysis, News2Score, Observation
from telemetry.scoring import PARAMETERS

# CPT 99454: device data on at least 16 days of a 30-day period.
ADHERENCE_WINDOW_DAYS = 30
ADHERENCE_TARGET_DAYS = 16

RISK_RANK = {"low": 1, "low-medium": 2, "medium": 3, "high": 4}


@dataclass(frozen=True)
class Vital:
    key: str
    label: str
    short: str
    codes: tuple[str, ...]
    unit: str
    decimals: int = 0


VITALS = (
    Vital("hr", "Heart rate", "HR", (c.HEART_RATE,), "/min"),
    Vital("spo2", "SpO₂", "SpO₂", (c.SPO2, c.SPO2_PULSE_OX), "%"),
    Vital("rr", "Resp. rate", "RR", (c.RESPIRATORY_RATE,), "/min"),
    Vital("bp", "Blood pressure", "BP", (c.SYSTOLIC, c.DIASTOLIC), "mmHg"),
    Vital("temp", "Temperature", "T", (c.BODY_TEMPERATURE,), "°C", 1),
    Vital("acvpu", "Consciousness", "ACVPU", (c.CONSCIOUSNESS,), ""),
)
TRACKED_CODES = tuple(code for vital in VITALS for code in vital.codes)

# NEWS2 parameters as telemetry.scoring names them, in chart order.
NEWS2_PARAMETERS = {
    "respiration_rate": "Respiration rate",
    "spo2": "SpO₂",
    "air_or_oxygen": "Air or oxygen",
    "systolic_bp": "Systolic BP",
    "pulse": "Pulse",
    "consciousness": "Consciousness",
    "temperature": "Temperature",
}


@dataclass(frozen=True)
class Reading:
    vital: Vital
    text: str
    time: datetime


@dataclass(frozen=True)
class DeviceStatus:
    device: Device
    state: str  # online, stale, never
    low_battery: bool

    @property
    def label(self) -> str:
        return {"online": "Online", "stale": "No recent data", "never": "Never seen"}[
            self.state
        ]


@dataclass
class WardRow:
    patient: Patient
    news2: News2Score | None = None
    active: Counter[str] = field(default_factory=Counter)
    acknowledged: int = 0
    readings: list[Reading] = field(default_factory=list)
    devices: list[DeviceStatus] = field(default_factory=list)
    adherence_days: int = 0

    @property
    def top_priority(self) -> str | None:
        ranked = sorted(self.active, key=PRIORITY_RANK.__getitem__, reverse=True)
        return ranked[0] if ranked else None

    @property
    def active_count(self) -> int:
        return sum(self.active.values())

    @property
    def alert_chips(self) -> list[tuple[str, int]]:
        return [
            (p, self.active[p]) for p in ("high", "medium", "low") if self.active[p]
        ]

    @property
    def device_problem(self) -> bool:
        return any(d.state != "online" or d.low_battery for d in self.devices)

    @property
    def adherent(self) -> bool:
        return self.adherence_days >= ADHERENCE_TARGET_DAYS

    @property
    def latest_reading_at(self) -> datetime | None:
        return max((r.time for r in self.readings), default=None)

    def risk_key(self) -> tuple[int, int, int, int]:
        """Higher is more urgent: the worst active alert, then the NEWS2 band and
        total, then how many alerts are active."""
        news2 = self.news2
        return (
            PRIORITY_RANK.get(self.top_priority or "", 0),
            RISK_RANK.get(news2.risk, 0) if news2 else 0,
            news2.total if news2 else -1,
            self.active_count,
        )


def ward_rows(
    patients: QuerySet[Patient], now: datetime | None = None
) -> list[WardRow]:
    """One row per patient, most urgent first."""
    now = now or timezone.now()
    rows = {p.pk: WardRow(p) for p in patients.prefetch_related(_active_devices())}
    ids = list(rows)
    for pk, score in latest_news2(ids).items():
        rows[pk].news2 = score
    _add_alerts(rows)
    for pk, readings in latest_readings(ids).items():
        rows[pk].readings = readings
    for pk, days in adherence_days(ids, now).items():
        rows[pk].adherence_days = days
    for row in rows.values():
        row.devices = device_statuses(row.patient.devices.all(), now)
    ordered = sorted(rows.values(), key=lambda r: r.patient.name)
    return sorted(ordered, key=WardRow.risk_key, reverse=True)


def _active_devices() -> Prefetch:
    return Prefetch(
        "devices",
        queryset=Device.objects.filter(status=Device.Status.ACTIVE).order_by("kind"),
    )


def latest_news2(patient_ids: list[int]) -> dict[int, News2Score]:
    # One news2_patient_as_of probe per patient.
    newest = News2Score.objects.filter(patient=OuterRef("pk")).order_by("-as_of")
    wanted = Patient.objects.filter(pk__in=patient_ids).annotate(
        score_pk=Subquery(newest.values("pk")[:1])
    )
    score_ids = [pk for pk in wanted.values_list("score_pk", flat=True) if pk]
    return {s.patient_id: s for s in News2Score.objects.filter(pk__in=score_ids)}


def _add_alerts(rows: dict[int, WardRow]) -> None:
    # alert_patient_state: "open alerts of these patients".
    counts = (
        Alert.objects.filter(patient_id__in=list(rows))
        .exclude(state=Alert.State.RESOLVED)
        .values_list("patient_id", "state", "priority")
        .annotate(n=Count("pk"))
    )
    for patient_id, state, priority, n in counts:
        if state == Alert.State.ACTIVE:
            rows[patient_id].active[priority] += n
        else:
            rows[patient_id].acknowledged += n


def latest_readings(patient_ids: Iterable[int]) -> dict[int, list[Reading]]:
    """The latest reading of each tracked code, per patient (one obs_patient_code_time
    probe per code and patient)."""
    annotations = {
        f"obs_{n}": Subquery(
            Observation.objects.filter(patient=OuterRef("pk"), code=code)
            .order_by("-time")
            .values("pk")[:1]
        )
        for n, code in enumerate(TRACKED_CODES)
    }
    latest = Patient.objects.filter(pk__in=list(patient_ids)).annotate(**annotations)
    obs_ids = [
        pk for row in latest.values_list(*annotations) for pk in row if pk is not None
    ]
    by_patient: dict[int, dict[str, Observation]] = defaultdict(dict)
    for obs in Observation.objects.filter(pk__in=obs_ids):
        by_patient[obs.patient_id][obs.code] = obs
    return {pk: readings_from(found) for pk, found in by_patient.items()}


def readings_from(latest: dict[str, Observation]) -> list[Reading]:
    readings = []
    for vital in VITALS:
        found = [latest[code] for code in vital.codes if code in latest]
        if not found:
            continue
        if vital.key == "bp":
            reading = _blood_pressure(vital, latest)
        else:
            newest = max(found, key=lambda o: o.time)
            reading = Reading(vital, format_value(newest, vital), newest.time)
        if reading:
            readings.append(reading)
    return readings


def _blood_pressure(vital: Vital, latest: dict[str, Observation]) -> Reading | None:
    systolic, diastolic = latest.get(c.SYSTOLIC), latest.get(c.DIASTOLIC)
    if systolic is None:
        return None
    low = f"/{diastolic.value:.0f}" if diastolic else ""
    return Reading(vital, f"{systolic.value:.0f}{low}", systolic.time)


def format_value(obs: Observation, vital: Vital) -> str:
    if obs.value is None:
        return obs.text
    return f"{obs.value:.{vital.decimals}f}"


def adherence_days(patient_ids: list[int], now: datetime) -> dict[int, int]:
    """Days with at least one upload in the last 30 (server receipt time, UTC)."""
    first_day = now.date() - timedelta(days=ADHERENCE_WINDOW_DAYS - 1)
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=now.tzinfo)
    days: set[tuple[int, date]] = set(
        Batch.objects.filter(patient_id__in=patient_ids, received_at__gte=since)
        .annotate(day=TruncDate("received_at"))
        .values_list("patient_id", "day")
        .distinct()
    )
    return Counter(pk for pk, _ in days)


def device_statuses(devices: Iterable[Device], now: datetime) -> list[DeviceStatus]:
    grace = timedelta(seconds=settings.DEVICE_STALE_GRACE_S)
    statuses = []
    for device in devices:
        if device.last_seen_at is None:
            state = "never"
        elif (
            device.stale or now - device.last_seen_at > device.expected_interval + grace
        ):
            state = "stale"
        else:
            state = "online"
        low = device.battery_pct is not None and device.battery_pct < BATTERY_LOW_PCT
        statuses.append(DeviceStatus(device, state, low))
    return statuses


def latest_ecg(patient: Patient) -> EcgAnalysis | None:
    # ecganalysis_patient_start.
    return EcgAnalysis.objects.filter(patient=patient).order_by("-start").first()


@dataclass(frozen=True)
class SubScore:
    name: str
    label: str
    points: int | None  # None: not measured


def news2_breakdown(score: News2Score | None) -> list[SubScore]:
    """Every parameter with its points; None where it was not measured."""
    subscores = score.subscores if score else {}
    return [
        SubScore(name, NEWS2_PARAMETERS.get(name, name), subscores.get(name))
        for name in PARAMETERS
    ]


def missing_labels(score: News2Score | None) -> list[str]:
    return [NEWS2_PARAMETERS.get(name, name) for name in score.missing] if score else []
