"""REST for alerts: scoped lists, catch-up after a dropped socket, and actions."""

from __future__ import annotations

import pytest
from django.utils import timezone

from alerts import services
from alerts.rules import Finding
from alerts.services import Subject

URL = "/api/v1/alerts/"


def raise_alert(patient, kind="news2", priority="medium"):
    [alert] = services.apply_outcomes(
        subject=Subject.of_patient(patient),
        outcomes=[
            Finding(kind, priority, timezone.now(), f"{kind} found", {"rule": "test"})
        ],
    )
    return alert


@pytest.fixture
def as_clinician(api, clinician):
    api.force_authenticate(clinician)
    return api


def test_a_clinician_lists_only_their_patients_alerts(
    as_clinician, patient, other_patient
):
    mine = raise_alert(patient)
    raise_alert(other_patient)
    results = as_clinician.get(URL).json()["results"]
    assert [a["id"] for a in results] == [mine.pk]


def test_an_admin_sees_the_whole_organisation(api, admin, patient, other_patient):
    raise_alert(patient)
    raise_alert(other_patient)
    api.force_authenticate(admin)
    assert len(api.get(URL).json()["results"]) == 2


def test_open_alerts_come_most_urgent_first(as_clinician, patient):
    raise_alert(patient, "battery_low", "low")
    raise_alert(patient, "news2", "high")
    raise_alert(patient, "af", "medium")
    priorities = [a["priority"] for a in as_clinician.get(URL).json()["results"]]
    assert priorities == ["high", "medium", "low"]


def test_filters_by_priority_and_kind(as_clinician, patient):
    raise_alert(patient, "battery_low", "low")
    raise_alert(patient, "news2", "high")
    assert [
        a["kind"] for a in as_clinician.get(URL, {"priority": "low"}).json()["results"]
    ] == ["battery_low"]
    assert [
        a["kind"] for a in as_clinician.get(URL, {"kind": "news2"}).json()["results"]
    ] == ["news2"]


def test_catch_up_returns_what_changed_after_a_sequence_number(
    as_clinician, patient, clinician
):
    first = raise_alert(patient, "news2")
    seen = as_clinician.get(URL).json()["max_seq"]
    second = raise_alert(patient, "af")
    services.acknowledge(alert_pk=first.pk, by=clinician)
    body = as_clinician.get(URL, {"after_seq": seen}).json()
    assert [a["id"] for a in body["results"]] == [second.pk, first.pk]
    assert body["results"][1]["state"] == "acknowledged"
    assert body["max_seq"] == body["results"][-1]["seq"]


def test_acknowledge_in_one_call(as_clinician, patient):
    alert = raise_alert(patient, "news2", "high")
    response = as_clinician.post(f"{URL}{alert.pk}/acknowledge/", {}, format="json")
    assert response.status_code == 200
    assert response.json()["state"] == "acknowledged"
    assert response.json()["acknowledged_by"] == "clinician"


def test_resolve_needs_a_reason(as_clinician, patient):
    alert = raise_alert(patient)
    assert (
        as_clinician.post(f"{URL}{alert.pk}/resolve/", {}, format="json").status_code
        == 400
    )
    response = as_clinician.post(
        f"{URL}{alert.pk}/resolve/",
        {"resolution": "false alarm, probe off"},
        format="json",
    )
    assert response.json()["state"] == "resolved"


def test_snoozing_a_high_alert_is_a_conflict(as_clinician, patient):
    alert = raise_alert(patient, "news2", "high")
    response = as_clinician.post(
        f"{URL}{alert.pk}/snooze/", {"minutes": 10}, format="json"
    )
    assert response.status_code == 409
    assert "cannot be snoozed" in response.json()["detail"]


def test_comments_appear_in_the_history(as_clinician, patient):
    alert = raise_alert(patient)
    as_clinician.post(
        f"{URL}{alert.pk}/comments/", {"text": "phoned, feels fine"}, format="json"
    )
    history = as_clinician.get(f"{URL}{alert.pk}/events/").json()
    assert [(e["type"], e["note"]) for e in history][-1] == (
        "comment",
        "phoned, feels fine",
    )
    assert history[-1]["actor"] == "clinician"


def test_another_teams_alert_is_not_found(api, other_clinician, patient):
    alert = raise_alert(patient)
    api.force_authenticate(other_clinician)
    assert api.get(f"{URL}{alert.pk}/").status_code == 404
    assert (
        api.post(f"{URL}{alert.pk}/acknowledge/", {}, format="json").status_code == 404
    )


def test_anonymous_and_devices_are_refused(api, client, device, patient):
    raise_alert(patient)
    assert api.get(URL).status_code == 401
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {device.token}")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("name", "value"),
    [("state", "open\x00"), ("kind", "nope"), ("after_seq", str(2**70))],
)
def test_a_filter_outside_its_choices_is_a_400(as_clinician, patient, name, value):
    response = as_clinician.get(URL, {name: value})
    assert response.status_code == 400
    assert name in response.json()
