"""Workflows on patients, devices and staff credentials. Each one audits itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from security.audit import record_event

from .credentials import CLINICIAN_PREFIX, DEVICE_PREFIX, issue_token
from .models import ClinicianToken, Device, DeviceAssignment, Patient, User


@dataclass(frozen=True)
class ProvisionedDevice:
    device: Device
    token: str


@transaction.atomic
def provision_device(
    *,
    serial: str,
    kind: str,
    patient: Patient | None = None,
    model: str = "",
    firmware: str = "",
    expected_interval_s: int = 60,
    by: User | None = None,
    request: HttpRequest | None = None,
) -> ProvisionedDevice:
    device = Device(
        serial=serial,
        kind=kind,
        model=model,
        firmware=firmware,
        expected_interval_s=expected_interval_s,
    )
    device.full_clean(exclude=["patient"])
    device.save()
    token = _set_new_token(device)
    if patient is not None:
        assign_device(device=device, patient=patient, by=by, request=request)
    record_event(
        action="device.provisioned",
        user=by,
        obj=device,
        patient=patient,
        request=request,
    )
    return ProvisionedDevice(device=device, token=token)


@transaction.atomic
def rotate_device_token(
    *, device: Device, by: User | None = None, request: HttpRequest | None = None
) -> str:
    """Issue a new token; the old one fails on the very next request."""
    device.status = Device.Status.ACTIVE
    token = _set_new_token(device)
    record_event(
        action="device.token_rotated",
        user=by,
        obj=device,
        patient=device.patient,
        request=request,
    )
    return token


@transaction.atomic
def revoke_device(
    *, device: Device, by: User | None = None, request: HttpRequest | None = None
) -> None:
    device.status = Device.Status.REVOKED
    device.token_digest = None
    device.save(update_fields=["status", "token_digest"])
    record_event(
        action="device.revoked",
        user=by,
        obj=device,
        patient=device.patient,
        request=request,
    )


def _set_new_token(device: Device) -> str:
    token = issue_token(DEVICE_PREFIX)
    device.token_digest = token.digest
    device.token_issued_at = timezone.now()
    device.save(update_fields=["status", "token_digest", "token_issued_at"])
    return token.raw


@transaction.atomic
def assign_device(
    *,
    device: Device,
    patient: Patient | None,
    by: User | None = None,
    request: HttpRequest | None = None,
) -> None:
    """Move a device to a patient (or to none), keeping the history."""
    now = timezone.now()
    DeviceAssignment.objects.filter(device=device, unassigned_at__isnull=True).update(
        unassigned_at=now
    )
    if patient is not None:
        DeviceAssignment.objects.create(
            device=device, patient=patient, assigned_at=now, assigned_by=by
        )
    device.patient = patient
    device.save(update_fields=["patient"])
    record_event(
        action="device.assigned",
        user=by,
        obj=device,
        patient=patient,
        request=request,
        details={"patient_id": patient.pk if patient else None},
    )


@transaction.atomic
def discharge_patient(
    *, patient: Patient, by: User | None = None, request: HttpRequest | None = None
) -> None:
    """Discharge a patient and take their devices off them (the devices stay
    provisioned so that they can be reissued)."""
    for device in patient.devices.all():
        assign_device(device=device, patient=None, by=by, request=request)
    patient.status = Patient.Status.DISCHARGED
    patient.discharged_at = timezone.now()
    patient.save(update_fields=["status", "discharged_at"])
    record_event(
        action="patient.discharged",
        user=by,
        obj=patient,
        patient=patient,
        request=request,
    )


@transaction.atomic
def issue_clinician_token(*, user: User, request: HttpRequest | None = None) -> str:
    token = issue_token(CLINICIAN_PREFIX)
    ClinicianToken.objects.create(
        user=user,
        digest=token.digest,
        expires_at=timezone.now() + timedelta(seconds=settings.CLINICIAN_TOKEN_TTL_S),
    )
    record_event(action="auth.token_issued", user=user, request=request)
    return token.raw
