"""The admin console: provisioning shows a token once; rotate, revoke, discharge."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry

from patients.auth import device_for_token
from patients.models import Device, DeviceAssignment, Patient
from security.models import AuditEvent

TOKEN = re.compile(r'<code class="device-token">(rpmd_[^<]+)</code>')


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def test_an_outsider_cannot_open_the_admin(client, clinician):
    client.force_login(clinician)
    assert client.get("/admin/patients/patient/").status_code == 302


def test_the_patient_list_searches_by_mrn(admin_client, patient, other_patient):
    page = admin_client.get("/admin/patients/patient/", {"q": "MRN-2"}).content.decode()
    assert "MRN-2" in page
    assert "MRN-1" not in page


def test_the_patient_page_shows_its_devices_inline(admin_client, patient, device):
    page = admin_client.get(
        f"/admin/patients/patient/{patient.pk}/change/"
    ).content.decode()
    assert "HUB-1" in page


def test_adding_a_device_shows_its_token_once_and_stores_only_a_hash(
    admin_client, patient
):
    response = admin_client.post(
        "/admin/patients/device/add/",
        {
            "serial": "PATCH-9",
            "kind": "ecg_patch",
            "patient": patient.pk,
            "expected_interval_s": 30,
            "model": "",
            "firmware": "",
            "assignments-TOTAL_FORMS": 0,
            "assignments-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200
    token = TOKEN.search(response.content.decode()).group(1)
    device = Device.objects.get(serial="PATCH-9")
    assert device_for_token(token) == device
    assert token not in (device.token_digest or "")
    assert "no-store" in response["Cache-Control"]
    assert DeviceAssignment.objects.filter(device=device, patient=patient).exists()


def test_rotating_a_token_makes_the_old_one_fail_at_once(admin_client, device):
    response = admin_client.post(
        "/admin/patients/device/",
        {
            "action": "rotate_tokens",
            "_selected_action": [device.device.pk],
        },
    )
    new_token = TOKEN.search(response.content.decode()).group(1)
    assert device_for_token(device.token) is None
    assert device_for_token(new_token) == device.device


def test_revoking_a_device_makes_its_token_fail(admin_client, device):
    admin_client.post(
        "/admin/patients/device/",
        {
            "action": "revoke",
            "_selected_action": [device.device.pk],
        },
    )
    assert device_for_token(device.token) is None
    assert AuditEvent.objects.filter(action="device.revoked").exists()


def test_discharging_takes_devices_off_and_keeps_the_history(
    admin_client, patient, device
):
    admin_client.post(
        "/admin/patients/patient/",
        {
            "action": "discharge",
            "_selected_action": [patient.pk],
        },
    )
    patient.refresh_from_db()
    assert patient.status == Patient.Status.DISCHARGED
    assert patient.devices.count() == 0
    assignment = DeviceAssignment.objects.get(device=device.device)
    assert assignment.unassigned_at is not None


def test_reassigning_a_device_keeps_its_history(admin_client, device, other_patient):
    d = device.device
    admin_client.post(
        f"/admin/patients/device/{d.pk}/change/",
        {
            "serial": d.serial,
            "kind": d.kind,
            "patient": other_patient.pk,
            "expected_interval_s": d.expected_interval_s,
            "model": "",
            "firmware": "",
            "assignments-TOTAL_FORMS": 1,
            "assignments-INITIAL_FORMS": 1,
            "assignments-0-id": d.assignments.get().pk,
            "assignments-0-device": d.pk,
        },
    )
    history = list(DeviceAssignment.objects.filter(device=d).order_by("assigned_at"))
    assert [a.patient_id for a in history] == [
        device.device.patient_id,
        other_patient.pk,
    ]
    assert history[0].unassigned_at is not None
    assert LogEntry.objects.filter(object_id=str(d.pk)).exists()
