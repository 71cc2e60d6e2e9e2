"""The audit log: written for reads and security events, never changed."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, transaction

from security.audit import record_event
from security.models import AuditEvent


def test_reading_a_patient_is_audited_with_who_what_and_where(api, clinician, patient):
    api.force_authenticate(clinician)
    api.get(f"/api/v1/patients/{patient.pk}/", REMOTE_ADDR="10.1.2.3")
    event = AuditEvent.objects.get(action="patient.read")
    assert (event.actor_user, event.patient, str(event.source_ip)) == (
        clinician,
        patient,
        "10.1.2.3",
    )
    assert event.outcome == "success"


def test_an_audit_row_cannot_be_updated(db, clinician):
    event = record_event(action="test.event", user=clinician)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="forged")
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


@pytest.mark.postgres  # only PostgreSQL refuses DELETE (SQLite's test flush needs it)
def test_an_audit_row_cannot_be_deleted(db, clinician):
    event = record_event(action="test.event", user=clinician)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_user_with_audit_history_cannot_be_deleted(db, clinician):
    from django.db.models import ProtectedError

    record_event(action="test.event", user=clinician)
    with pytest.raises(ProtectedError):
        clinician.delete()
