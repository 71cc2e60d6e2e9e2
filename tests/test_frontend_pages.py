"""The clinician's screens through Django's test client: sign-in and sign-out,
what a clinician may see, and what the patient list and page say."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert
from patients.models import Device
from security.models import AuditEvent
from telemetry.models import Batch, News2Score
from tests.conftest import PASSWORD, make_patient

pytestmark = pytest.mark.django_db


def signed_in(client, user):
    client.force_login(user)
    return client


def add_score(patient, total: int, risk: str, **extra) -> News2Score:
    fields = {
        "subscores": {"pulse": 3},
        "missing": ["temperature"],
        "partial": True,
        "spo2_scale": 1,
        "computed_at": timezone.now(),
        **extra,
    }
    return News2Score.objects.create(
        patient=patient, as_of=timezone.now(), total=total, risk=risk, **fields
    )


def add_alert(patient, priority: str, kind: str = "heart_rate_low") -> Alert:
    now = timezone.now()
    return Alert.objects.create(
        subject_key=f"patient:{patient.pk}",
        kind=kind,
        category="physiological",
        priority=priority,
        patient=patient,
        organisation=patient.organisation,
        title=kind.replace("_", " ").capitalize(),
        message="test condition",
        latching=False,
        raised_at=now,
        condition_since=now,
        condition_last_at=now,
    )


def team_patient(clinician, mrn: str, given: str):
    patient = make_patient(clinician.organisation, mrn)
    patient.given_name = given
    patient.save()
    clinician.care_teams.get().patients.add(patient)
    return patient


def row_names(response) -> list[str]:
    return [row.patient.given_name for row in response.context["rows"]]


def test_the_sign_in_page_is_served_to_anyone(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in response.content


def test_the_pages_name_an_icon_from_our_static_files(client):
    """A tab among many on a monitoring shift is found by its icon (and the
    browser's own /favicon.ico guess no longer ends in a 404). Every page extends
    the base template the sign-in page shows here."""
    html = client.get(reverse("login")).content.decode()
    [href] = re.findall(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)
    relative = href.removeprefix("/" + settings.STATIC_URL.strip("/") + "/")
    assert relative == "frontend/icon.svg", href
    found = finders.find(relative)
    assert found
    assert Path(found).read_text().startswith("<svg")


def test_the_patient_list_sends_a_stranger_to_sign_in(client):
    response = client.get(reverse("ward"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_clinician_signs_in_and_lands_on_their_patient_list(client, clinician):
    response = client.post(
        reverse("login"),
        {"username": "clinician", "password": PASSWORD},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("ward")
    assert b"LOVELACE, Ada" in response.content


def test_a_wrong_password_is_refused_with_a_message(client, clinician):
    response = client.post(
        reverse("login"), {"username": "clinician", "password": "wrong horse"}
    )
    assert response.status_code == 200
    assert b"Wrong username or password" in response.content


def test_signing_out_ends_the_session(client, clinician):
    signed_in(client, clinician)
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("ward")).status_code == 302


def test_a_clinician_sees_only_their_care_teams_patients(
    client, clinician, other_clinician, other_patient
):
    response = signed_in(client, clinician).get(reverse("ward"))
    assert [r.patient.mrn for r in response.context["rows"]] == ["MRN-1"]
    assert b"MRN-2" not in response.content


def test_an_admin_sees_every_patient_of_the_organisation(
    client, admin, patient, other_patient
):
    response = signed_in(client, admin).get(reverse("ward"))
    assert {r.patient.mrn for r in response.context["rows"]} == {"MRN-1", "MRN-2"}


def test_the_patient_list_is_audited_with_the_patients_shown(
    client, clinician, patient
):
    signed_in(client, clinician).get(reverse("ward"))
    event = AuditEvent.objects.get(action="patient.list")
    assert event.details["patient_ids"] == [patient.pk]


def test_the_most_urgent_patient_comes_first(client, clinician, patient):
    calm = team_patient(clinician, "MRN-3", "Calm")
    scored = team_patient(clinician, "MRN-4", "Scored")
    alarmed = team_patient(clinician, "MRN-5", "Alarmed")
    add_score(calm, 1, "low")
    add_score(scored, 6, "medium")
    add_score(alarmed, 2, "low")
    add_alert(alarmed, "high")
    response = signed_in(client, clinician).get(reverse("ward"))
    assert row_names(response) == ["Alarmed", "Scored", "Calm", "Ada"]


def test_an_acknowledged_alert_no_longer_lifts_a_patient_to_the_top(
    client, clinician, patient
):
    scored = team_patient(clinician, "MRN-3", "Scored")
    add_score(scored, 5, "medium")
    alert = add_alert(patient, "high")
    Alert.objects.filter(pk=alert.pk).update(state=Alert.State.ACKNOWLEDGED)
    response = signed_in(client, clinician).get(reverse("ward"))
    assert row_names(response) == ["Scored", "Ada"]
    assert b"1 acknowledged" in response.content


def test_the_list_shows_the_news2_band_and_the_alert_priorities(
    client, clinician, patient
):
    add_score(patient, 7, "high")
    add_alert(patient, "high")
    add_alert(patient, "medium", kind="temperature_high")
    content = signed_in(client, clinician).get(reverse("ward")).content.decode()
    assert "band-high" in content
    assert "1 high" in content
    assert "1 medium" in content


def test_a_device_that_stopped_reporting_shows_as_stale_with_low_battery(
    client, clinician, device
):
    Device.objects.filter(pk=device.device.pk).update(
        last_seen_at=timezone.now() - timedelta(hours=2), battery_pct=12
    )
    content = signed_in(client, clinician).get(reverse("ward")).content.decode()
    assert "no recent data" in content
    assert "low battery 12 %" in content


def test_adherence_counts_the_days_with_data_in_the_last_thirty(
    client, clinician, device, monkeypatch
):
    now = timezone.now()
    # The view reads the same instant: a UTC midnight between the two reads would
    # move its 30-day window by a day.
    monkeypatch.setattr("frontend.summary.timezone", SimpleNamespace(now=lambda: now))
    for days_ago in (0, 0, 1, 5, 29, 31):
        at = now - timedelta(days=days_ago)
        Batch.objects.create(
            device=device.device,
            patient=device.device.patient,
            batch_id=uuid.uuid4(),
            fingerprint="f" * 64,
            sent_at=at,
            received_at=at,
            observation_count=1,
            ecg_count=0,
            queued_at=at,
        )
    response = signed_in(client, clinician).get(reverse("ward"))
    row = response.context["rows"][0]
    assert row.adherence_days == 4
    assert not row.adherent
    assert b"4/30 d" in response.content


def test_the_rows_fragment_holds_the_same_rows(client, clinician, patient):
    response = signed_in(client, clinician).get(reverse("ward-rows"))
    assert response.status_code == 200
    assert b"<html" not in response.content
    assert f'data-patient-id="{patient.pk}"'.encode() in response.content


def test_another_teams_patient_page_is_not_found(
    client, clinician, other_clinician, other_patient
):
    response = signed_in(client, clinician).get(
        reverse("patient", args=[other_patient.pk])
    )
    assert response.status_code == 404
    denied = AuditEvent.objects.get(action="patient.read")
    assert denied.outcome == AuditEvent.Outcome.DENIED


def test_another_teams_alert_history_is_not_found(
    client, clinician, other_clinician, other_patient
):
    response = signed_in(client, clinician).get(
        reverse("patient-alerts", args=[other_patient.pk])
    )
    assert response.status_code == 404


def test_the_patient_page_shows_news2_subscores_and_what_is_missing(
    client, clinician, patient
):
    add_score(patient, 3, "low-medium")
    response = signed_in(client, clinician).get(reverse("patient", args=[patient.pk]))
    assert response.status_code == 200
    points = {s.name: s.points for s in response.context["subscores"]}
    assert points["pulse"] == 3
    assert points["temperature"] is None
    assert "Partial score" in response.content.decode()
    assert 'Not measured: <span id="news2-missing">Temperature</span>' in (
        response.content.decode()
    )


def test_reading_a_patient_page_is_audited(client, clinician, patient):
    signed_in(client, clinician).get(reverse("patient", args=[patient.pk]))
    event = AuditEvent.objects.get(action="patient.read")
    assert (event.patient, event.actor_user) == (patient, clinician)


def test_the_patient_page_lists_open_alerts_with_their_actions(
    client, clinician, patient
):
    add_alert(patient, "medium", kind="temperature_high")
    content = (
        signed_in(client, clinician)
        .get(reverse("patient", args=[patient.pk]))
        .content.decode()
    )
    assert "Temperature high" in content
    assert 'data-action="acknowledge"' in content
    assert 'data-action="snooze"' in content


def test_a_high_priority_alert_offers_no_snooze(client, clinician, patient):
    add_alert(patient, "high")
    content = (
        signed_in(client, clinician)
        .get(reverse("patient-alerts", args=[patient.pk]))
        .content.decode()
    )
    assert 'data-action="acknowledge"' in content
    assert 'data-action="snooze"' not in content


@pytest.mark.parametrize(
    ("rhythm", "shown"),
    [("vf", "VF / ventricular flutter"), ("af", "AF"), ("sinus", "Sinus"), ("", "—")],
)
def test_the_rhythm_reads_as_a_clinician_writes_it(rhythm, shown):
    from frontend.templatetags.dashboard import rhythm_label

    assert rhythm_label(rhythm) == shown
