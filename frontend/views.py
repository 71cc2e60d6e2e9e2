from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from patients.models import Patient


@login_required
def ward(request: HttpRequest) -> HttpResponse:
    patients = (
        Patient.objects.visible_to(request.user)
        .exclude(status=Patient.Status.DISCHARGED)
        .prefetch_related("devices")
        .order_by("mrn")
    )
    return render(request, "frontend/ward.html", {"patients": patients})
