"""JSON for the dashboard's scripts: trend series, the patient directory of the
alert panel, the keep-alive of the inactivity sign-out, and the admins' security
page's chart series."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from django.db.models import Avg, Count, Max, Min
from django.db.models.functions import TruncHour, TruncMinute
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from security.audit import record_event
from telemetry.contract import CODES
from telemetry.models import News2Score, Observation

from . import security_page
from .middleware import touch_activity
from .summary import VITALS
from .views import visible_patient, ward_patients

View = Callable[..., HttpResponse]


@dataclass(frozen=True)
class Range:
    span: timedelta
    bucket: timedelta
    trunc: type  # the database function that makes the finest bucket


RANGES = {
    "24h": Range(timedelta(hours=24), timedelta(minutes=5), TruncMinute),
    "7d": Range(timedelta(days=7), timedelta(hours=1), TruncHour),
}


def staff_json(view: View) -> View:
    """Signed-in staff only; a script gets 401 rather than the sign-in page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return JsonResponse({"detail": "signed out"}, status=401)
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@staff_json
def trends(request: HttpRequest, patient_id: int) -> JsonResponse:
    """Vital signs and NEWS2 in buckets (mean, min, max) over 24 hours or 7 days."""
    window = RANGES.get(request.GET.get("range", "24h"))
    if window is None:
        return JsonResponse(
            {"detail": f"range is one of {', '.join(RANGES)}"}, status=400
        )
    patient = visible_patient(request, patient_id, "observation.trend")
    until = timezone.now()
    since = until - window.span
    grid = bucket_grid(since, until, window.bucket)
    charts = [
        _chart(v.key, v.label, v.unit, _vital_lines(patient_id, v.codes, since, window))
        for v in VITALS
        if v.key != "acvpu"
    ]
    charts.append(
        _chart("news2", "NEWS2", "", [_news2_line(patient_id, since, window)])
    )
    record_event(
        action="observation.trend",
        user=request.user,
        patient=patient,
        request=request,
        details={"range": request.GET.get("range", "24h")},
    )
    return JsonResponse(
        {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "t": [int(t.timestamp()) for t in grid],
            "charts": [_aligned(chart, grid, window.bucket) for chart in charts],
        }
    )


def bucket_grid(since: datetime, until: datetime, bucket: timedelta) -> list[datetime]:
    start = floor_time(since, bucket)
    count = int((until - start) / bucket) + 1
    return [start + i * bucket for i in range(count)]


def floor_time(moment: datetime, bucket: timedelta) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=moment.tzinfo)
    return moment - (moment - epoch) % bucket


Buckets = dict[datetime, tuple[float, float, float, int]]  # mean, min, max, count


def _vital_lines(
    patient_id: int, codes: tuple[str, ...], since: datetime, window: Range
) -> list[dict[str, Any]]:
    lines = []
    for code in codes:
        # obs_patient_code_time: a range scan of one code of one patient.
        rows = (
            Observation.objects.filter(
                patient_id=patient_id, code=code, time__gte=since, value__isnull=False
            )
            .annotate(slot=window.trunc("time"))
            .values("slot")
            .annotate(
                mean=Avg("value"), low=Min("value"), high=Max("value"), n=Count("pk")
            )
        )
        buckets = fold(rows, window.bucket)
        if buckets:
            lines.append({"code": code, "name": CODES[code].name, "buckets": buckets})
    return lines


def _news2_line(patient_id: int, since: datetime, window: Range) -> dict[str, Any]:
    # news2_patient_as_of.
    rows = (
        News2Score.objects.filter(patient_id=patient_id, as_of__gte=since)
        .annotate(slot=window.trunc("as_of"))
        .values("slot")
        .annotate(mean=Max("total"), low=Min("total"), high=Max("total"), n=Count("pk"))
    )
    return {
        "code": "news2",
        "name": "NEWS2 (highest)",
        "buckets": fold(rows, window.bucket),
    }


def fold(rows: Any, bucket: timedelta) -> Buckets:
    """Finer database buckets folded into the chart's buckets (count-weighted mean)."""
    folded: dict[datetime, list[float]] = {}
    for row in rows:
        key = floor_time(row["slot"], bucket)
        total, low, high, n = folded.get(key, [0.0, row["low"], row["high"], 0])
        folded[key] = [
            total + row["mean"] * row["n"],
            min(low, row["low"]),
            max(high, row["high"]),
            n + row["n"],
        ]
    return {k: (t / n, lo, hi, n) for k, (t, lo, hi, n) in folded.items()}


def _chart(key: str, label: str, unit: str, lines: list) -> dict[str, Any]:
    return {"key": key, "label": label, "unit": unit, "lines": lines}


def _aligned(chart: dict[str, Any], grid: list[datetime], bucket: timedelta) -> dict:
    def column(buckets: Buckets, i: int) -> list[float | None]:
        return [round(buckets[t][i], 2) if t in buckets else None for t in grid]

    lines = [
        {
            "code": line["code"],
            "name": line["name"],
            "mean": column(line["buckets"], 0),
            "min": column(line["buckets"], 1),
            "max": column(line["buckets"], 2),
        }
        for line in chart["lines"]
        if line["buckets"]
    ]
    return {**chart, "lines": lines}


@require_GET
@staff_json
def directory(request: HttpRequest) -> JsonResponse:
    """Names of the caller's patients, for the alert panel's cards."""
    patients = ward_patients(request.user).values(
        "pk", "mrn", "given_name", "family_name"
    )
    return JsonResponse(
        {
            str(p["pk"]): {
                "mrn": p["mrn"],
                "name": f"{p['given_name']} {p['family_name']}",
            }
            for p in patients
        }
    )


@require_POST
@staff_json
def keepalive(request: HttpRequest) -> JsonResponse:
    """The page saw the clinician at work: keep the server-side session alive."""
    touch_activity(request)
    return JsonResponse({"ok": True})


@require_GET
@staff_json
def security_data(request: HttpRequest) -> JsonResponse:
    """The security page's chart series (admins only; 404 to anyone else)."""
    if not request.user.is_org_admin:
        raise Http404
    link = security_page.current_link()
    runs = security_page.recent_runs(link)
    return JsonResponse(security_page.chart_data(link, runs))
