"""The clinician's screens: the ward (home), a patient's page, and the fragments
their scripts re-fetch when something changes. Every read of patient data is
audited; a patient outside the clinician's care teams does not exist (404)."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from alerts.models import Alert
from patients.models import Device, Patient
from security.audit import record_event
from security.models import AuditEvent

from . import security_page as security_page_data
from .models import PatientNote
from .summary import (
    ADHERENCE_TARGET_DAYS,
    ADHERENCE_WINDOW_DAYS,
    VITALS,
    DeviceStatus,
    device_statuses,
    latest_ecg,
    latest_news2,
    latest_readings,
    missing_labels,
    news2_breakdown,
    ward_rows,
)

NOTE_MAX_CHARS = 4000
RESOLVED_SHOWN = 20
NOTES_SHOWN = 50
SNOOZE_CHOICES_MIN = (5, 15, 30, 60)


def ward_patients(user) -> QuerySet[Patient]:
    return Patient.objects.visible_to(user).exclude(status=Patient.Status.DISCHARGED)


def visible_patient(request: HttpRequest, patient_id: int, action: str) -> Patient:
    """The patient if the caller may see them; otherwise 404, audited as denied."""
    try:
        return get_object_or_404(
            Patient.objects.visible_to(request.user), pk=patient_id
        )
    except Http404:
        record_event(
            action=action,
            user=request.user,
            request=request,
            outcome=AuditEvent.Outcome.DENIED,
            details={"patient_id": patient_id},
        )
        raise


def _ward_context(request: HttpRequest) -> dict:
    rows = ward_rows(ward_patients(request.user))
    record_event(
        action="patient.list",
        user=request.user,
        request=request,
        details={"patient_ids": [r.patient.pk for r in rows], "via": "dashboard"},
    )
    return {
        "rows": rows,
        "adherence_target": ADHERENCE_TARGET_DAYS,
        "adherence_window": ADHERENCE_WINDOW_DAYS,
    }


@login_required
def ward(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/ward.html", _ward_context(request))


@login_required
def ward_rows_fragment(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/_ward_rows.html", _ward_context(request))


@login_required
def patient_page(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = visible_patient(request, patient_id, "patient.read")
    record_event(
        action="patient.read",
        user=request.user,
        patient=patient,
        request=request,
        details={"via": "dashboard"},
    )
    news2 = latest_news2([patient.pk]).get(patient.pk)
    readings = latest_readings([patient.pk]).get(patient.pk, [])
    context = {
        "patient": patient,
        "vitals": VITALS,
        "vitals_config": [
            {"key": v.key, "codes": v.codes, "decimals": v.decimals} for v in VITALS
        ],
        "readings_by_key": {r.vital.key: r for r in readings},
        "news2": news2,
        "subscores": news2_breakdown(news2),
        "missing": missing_labels(news2),
        "ecg": latest_ecg(patient),
        "devices": _devices(patient),
        "notes": _notes(patient),
        "note_max": NOTE_MAX_CHARS,
        **_alert_history(patient),
    }
    return render(request, "frontend/patient.html", context)


@login_required
def patient_alerts_fragment(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = visible_patient(request, patient_id, "alert.list")
    record_event(
        action="alert.list",
        user=request.user,
        patient=patient,
        request=request,
        details={"via": "dashboard"},
    )
    return render(request, "frontend/_patient_alerts.html", _alert_history(patient))


@require_POST
@login_required
def add_note(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = visible_patient(request, patient_id, "note.created")
    text = request.POST.get("text", "").strip()[:NOTE_MAX_CHARS]
    if text:
        with transaction.atomic():  # the note with its audit row
            note = PatientNote.objects.create(
                patient=patient, author=request.user, text=text
            )
            record_event(
                action="note.created",
                user=request.user,
                patient=patient,
                obj=note,
                request=request,
            )
    return redirect(f"{patient_url(patient)}#notes")


def patient_url(patient: Patient) -> str:
    return reverse("patient", args=[patient.pk])


def _devices(patient: Patient) -> list[DeviceStatus]:
    devices = patient.devices.filter(status=Device.Status.ACTIVE).order_by("kind")
    return device_statuses(devices, timezone.now())


def _notes(patient: Patient) -> QuerySet[PatientNote]:
    # note_patient_created.
    return (
        PatientNote.objects.filter(patient=patient)
        .select_related("author")
        .order_by("-created_at")[:NOTES_SHOWN]
    )


def _alert_history(patient: Patient) -> dict:
    """Open alerts (active first, then by priority) and the latest resolved ones."""
    rank = Case(
        When(state=Alert.State.ACTIVE, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    priority = Case(
        When(priority="high", then=Value(0)),
        When(priority="medium", then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    alerts = Alert.objects.filter(patient=patient).select_related("acknowledged_by")
    return {
        "open_alerts": alerts.exclude(state=Alert.State.RESOLVED).order_by(
            rank, priority, "-raised_at"
        ),
        "resolved_alerts": alerts.filter(state=Alert.State.RESOLVED).order_by(
            "-resolved_at"
        )[:RESOLVED_SHOWN],
        "snooze_choices": [
            m for m in SNOOZE_CHOICES_MIN if m <= settings.ALERT_MAX_SNOOZE_MIN
        ],
    }


def org_admin_only(view):
    """Signed-in admins only; to anyone else the page does not exist (404)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_org_admin:
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper


@org_admin_only
def security_page(request: HttpRequest) -> HttpResponse:
    link = security_page_data.current_link()
    runs = security_page_data.recent_runs(link)
    recent = list(reversed(runs))[:10]
    for run in recent:
        run.qber_pct = None if run.qber is None else run.qber * 100
    context = {
        "link": link,
        "last_run": runs[-1] if runs else None,
        "runs_count": len(runs),
        "recent_runs": recent,
        "pools": security_page_data.pools(),
        "max_key_count": settings.QKD_MAX_KEY_COUNT,
        "qber_abort_pct": security_page_data.QBER_ABORT * 100,
        "events": security_page_data.eavesdropping_alerts(request.user),
    }
    return render(request, "frontend/security.html", context)
