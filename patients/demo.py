"""The demo ward that ``make demo`` and the simulator use.

Idempotent: running it again keeps every row and only rotates the demo devices'
tokens (a token is shown once, so a new run needs new ones).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import transaction

from .models import CareTeam, Device, Organisation, Patient, Role, User
from .services import assign_device, provision_device, rotate_device_token

ORGANISATION = "Demo Community Hospital"
PASSWORD = "demo-ward-2026"  # noqa: S105 (published demo login, refused in production)

STAFF = [
    ("nurse.ada", "Ada", "Okafor", Role.CLINICIAN, ["North"]),
    ("nurse.ben", "Ben", "Lindqvist", Role.CLINICIAN, ["South"]),
    ("charge.cleo", "Cleo", "Marsh", Role.CHARGE_NURSE, ["North", "South"]),
    ("admin", "Dana", "Iyer", Role.ADMIN, []),
]

PATIENTS = [
    ("Margaret", "Hughes", date(1941, 3, 2), "female"),
    ("Thomas", "Reid", date(1950, 7, 19), "male"),
    ("Aisha", "Rahman", date(1962, 11, 5), "female"),
    ("George", "Whitfield", date(1938, 1, 27), "male"),
    ("Priya", "Nair", date(1971, 5, 14), "female"),
    ("Walter", "Brennan", date(1946, 9, 30), "male"),
    ("Eleanor", "Fitzgerald", date(1944, 12, 8), "female"),
    ("Samuel", "Osei", date(1958, 4, 21), "male"),
    ("Hannah", "Kowalski", date(1967, 8, 3), "female"),
    ("Arthur", "Pemberton", date(1935, 6, 11), "male"),
    ("Lucía", "Moreno", date(1979, 2, 16), "female"),
    ("Frank", "Delaney", date(1953, 10, 25), "male"),
]

DEVICE_KINDS = [("HUB", Device.Kind.HUB, 60), ("ECG", Device.Kind.ECG_PATCH, 30)]


@transaction.atomic
def seed_demo() -> dict[str, Any]:
    organisation, _ = Organisation.objects.get_or_create(name=ORGANISATION)
    teams = {
        name: CareTeam.objects.get_or_create(organisation=organisation, name=name)[0]
        for name in ("North", "South")
    }
    patients = [
        _patient(organisation, n, *row) for n, row in enumerate(PATIENTS, start=1)
    ]
    for patient in patients:
        team = teams["North"] if patient.mrn <= "DEMO-006" else teams["South"]
        team.patients.add(patient)
    clinicians = [_staff(organisation, teams, *row) for row in STAFF]
    devices = [_device(patient, *kind) for patient in patients for kind in DEVICE_KINDS]
    return {
        "clinicians": clinicians,
        "patients": [{"id": p.pk, "mrn": p.mrn, "name": p.name} for p in patients],
        "devices": devices,
    }


def _patient(
    organisation: Organisation, n: int, given: str, family: str, born: date, sex: str
) -> Patient:
    patient, _ = Patient.objects.get_or_create(
        organisation=organisation,
        mrn=f"DEMO-{n:03d}",
        defaults={
            "given_name": given,
            "family_name": family,
            "birth_date": born,
            "sex": sex,
        },
    )
    return patient


def _staff(
    organisation: Organisation,
    teams: dict[str, CareTeam],
    username: str,
    first: str,
    last: str,
    role: str,
    team_names: list[str],
) -> dict[str, Any]:
    user, _ = User.objects.get_or_create(username=username)
    user.first_name, user.last_name, user.role = first, last, role
    user.organisation = organisation
    user.is_staff = role == Role.ADMIN
    user.is_superuser = role == Role.ADMIN
    user.set_password(PASSWORD)
    user.save()
    for name in team_names:
        teams[name].members.add(user)
    visible = (
        Patient.objects.visible_to(user).order_by("mrn").values_list("mrn", flat=True)
    )
    return {
        "username": username,
        "password": PASSWORD,
        "role": role,
        "patients": list(visible),
    }


def _device(
    patient: Patient, prefix: str, kind: str, interval_s: int
) -> dict[str, Any]:
    serial = f"DEMO-{prefix}-{patient.mrn[-3:]}"
    device = Device.objects.filter(serial=serial).first()
    if device is None:
        token = provision_device(
            serial=serial,
            kind=kind,
            patient=patient,
            expected_interval_s=interval_s,
            model="Demo",
        ).token
    else:
        if device.patient_id != patient.pk:
            assign_device(device=device, patient=patient)
        token = rotate_device_token(device=device)
    return {"serial": serial, "patient_mrn": patient.mrn, "token": token}
