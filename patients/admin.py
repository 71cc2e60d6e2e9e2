"""The admin console: organisations, staff, care teams, patients and devices.

Django's admin log records every change made here; the device actions (provision,
rotate, revoke) and discharge go through the services, which audit them too.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from . import services
from .models import CareTeam, Device, DeviceAssignment, Organisation, Patient, User


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(User)
class StaffAdmin(UserAdmin):
    list_display = [
        "username",
        "first_name",
        "last_name",
        "role",
        "organisation",
        "is_active",
    ]
    list_filter = ["role", "organisation", "is_active", "is_staff"]
    fieldsets = (
        *UserAdmin.fieldsets,
        ("Role", {"fields": ("organisation", "role")}),
    )
    add_fieldsets = (
        *UserAdmin.add_fieldsets,
        ("Role", {"fields": ("organisation", "role")}),
    )


@admin.register(CareTeam)
class CareTeamAdmin(admin.ModelAdmin):
    list_display = ["name", "organisation"]
    list_filter = ["organisation"]
    search_fields = ["name"]
    filter_horizontal = ["members", "patients"]


class DeviceInline(admin.TabularInline):
    model = Device
    fields = [
        "serial",
        "kind",
        "status",
        "last_seen_at",
        "battery_pct",
        "expected_interval_s",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = [
        "mrn",
        "family_name",
        "given_name",
        "birth_date",
        "status",
        "spo2_scale",
    ]
    list_filter = ["status", "organisation", "spo2_scale", "care_teams"]
    search_fields = ["mrn", "family_name", "given_name"]
    readonly_fields = ["enrolled_at", "discharged_at"]
    inlines = [DeviceInline]
    actions = ["discharge"]

    @admin.action(
        description="Discharge the selected patients (take their devices off)"
    )
    def discharge(self, request: HttpRequest, queryset: QuerySet[Patient]) -> None:
        for patient in queryset.exclude(status=Patient.Status.DISCHARGED):
            services.discharge_patient(
                patient=patient, by=request.user, request=request
            )
        self.message_user(request, "Discharged.", messages.SUCCESS)


class AssignmentInline(admin.TabularInline):
    model = DeviceAssignment
    fields = ["patient", "assigned_at", "unassigned_at", "assigned_by"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = [
        "serial",
        "kind",
        "patient",
        "status",
        "last_seen_at",
        "battery_pct",
    ]
    list_filter = ["kind", "status"]
    search_fields = ["serial", "patient__mrn", "model"]
    autocomplete_fields = ["patient"]
    readonly_fields = [
        "status",
        "last_seen_at",
        "battery_pct",
        "token_issued_at",
        "created_at",
    ]
    inlines = [AssignmentInline]
    actions = ["rotate_tokens", "revoke"]

    def save_model(
        self, request: HttpRequest, obj: Device, form: Any, change: bool
    ) -> None:
        if not change:
            provisioned = services.provision_device(
                serial=obj.serial,
                kind=obj.kind,
                patient=obj.patient,
                model=obj.model,
                firmware=obj.firmware,
                expected_interval_s=obj.expected_interval_s,
                by=request.user,
                request=request,
            )
            obj.pk = provisioned.device.pk
            request._new_device_token = provisioned.token  # type: ignore[attr-defined]
            return
        super().save_model(request, obj, form, change)
        if "patient" in form.changed_data:
            services.assign_device(
                device=obj, patient=obj.patient, by=request.user, request=request
            )

    def response_add(
        self, request: HttpRequest, obj: Device, post_url_continue: Any = None
    ) -> HttpResponse:
        token = getattr(request, "_new_device_token", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        return self._show_tokens(request, [(obj, token)], "Device provisioned")

    @admin.action(description="Rotate the token of the selected devices (shown once)")
    def rotate_tokens(
        self, request: HttpRequest, queryset: QuerySet[Device]
    ) -> HttpResponse:
        issued = [
            (
                device,
                services.rotate_device_token(
                    device=device, by=request.user, request=request
                ),
            )
            for device in queryset
        ]
        return self._show_tokens(request, issued, "New device tokens")

    @admin.action(description="Revoke the selected devices")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        for device in queryset.filter(status=Device.Status.ACTIVE):
            services.revoke_device(device=device, by=request.user, request=request)
        self.message_user(
            request, "Revoked: their tokens no longer work.", messages.SUCCESS
        )

    def _show_tokens(
        self, request: HttpRequest, issued: list, title: str
    ) -> TemplateResponse:
        # Rendered straight into the response, never into a message or the session,
        # so the token is shown exactly once and stored nowhere in clear.
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "issued": issued,
            "opts": self.model._meta,
        }
        response = TemplateResponse(
            request, "admin/patients/device/tokens.html", context
        )
        response["Cache-Control"] = "no-store"
        return response
