"""Clinician notes on the patient page: written, shown, audited, scoped."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from frontend.models import PatientNote
from security.models import AuditEvent

pytestmark = pytest.mark.django_db


def add_note(client, patient, text: str):
    return client.post(reverse("patient-notes", args=[patient.pk]), {"text": text})


def test_a_clinician_adds_a_note_that_appears_on_the_patient_page(
    client, clinician, patient
):
    client.force_login(clinician)
    response = add_note(client, patient, "Reviewed overnight readings.")
    assert response.status_code == 302
    page = client.get(reverse("patient", args=[patient.pk])).content.decode()
    assert "Reviewed overnight readings." in page
    assert PatientNote.objects.get().author == clinician


def test_adding_a_note_is_audited(client, clinician, patient):
    client.force_login(clinician)
    add_note(client, patient, "Called the patient.")
    event = AuditEvent.objects.get(action="note.created")
    assert (event.patient, event.actor_user) == (patient, clinician)
    assert event.object_id == str(PatientNote.objects.get().pk)


def test_a_blank_note_is_not_stored(client, clinician, patient):
    client.force_login(clinician)
    add_note(client, patient, "   ")
    assert not PatientNote.objects.exists()


def test_a_note_on_another_teams_patient_is_refused(
    client, clinician, other_clinician, other_patient
):
    client.force_login(clinician)
    response = add_note(client, other_patient, "Not mine.")
    assert response.status_code == 404
    assert not PatientNote.objects.exists()


def test_a_note_without_the_csrf_token_is_refused(clinician, patient):
    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician)
    response = add_note(client, patient, "Forged.")
    assert response.status_code == 403
    assert not PatientNote.objects.exists()


def test_notes_are_shown_newest_first(client, clinician, patient):
    client.force_login(clinician)
    add_note(client, patient, "first note")
    add_note(client, patient, "second note")
    page = client.get(reverse("patient", args=[patient.pk])).content.decode()
    assert page.index("second note") < page.index("first note")
