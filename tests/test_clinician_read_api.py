"""GET /api/v1/patients/{id}/observations/ and …/ecg/: what clinicians read."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from patients.models import Organisation, Role
from patients.services import issue_clinician_token
from security.models import AuditEvent
from telemetry.models import EcgSegment, Observation
from tests.conftest import PASSWORD, make_patient, make_staff

UPLOAD = "/api/v1/telemetry/batches"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def minutes_ago(n: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=n)


def reading(code: str, value, unit: str, at: datetime) -> dict:
    return {"code": code, "value": value, "unit": unit, "time": iso(at)}


def strip(lead="II", at=None, samples=(12, -15, 9), unit="uV", fs_hz=250) -> dict:
    return {
        "lead": lead,
        "fs_hz": fs_hz,
        "start": iso(at or minutes_ago(1)),
        "unit": unit,
        "samples": list(samples),
    }


def upload(client, device, observations=(), ecg=()) -> None:
    body = {
        "batch_id": str(uuid.uuid4()),
        "sent_at": iso(datetime.now(UTC)),
        "observations": list(observations),
        "ecg": list(ecg),
    }
    response = client.post(
        UPLOAD,
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {device.token}",
    )
    assert response.status_code == 201, response.content


def observations_url(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/observations/"


def ecg_url(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/ecg/"


def segment_url(patient, segment) -> str:
    return f"/api/v1/patients/{patient.pk}/ecg/{segment.pk}/"


@pytest.fixture
def signed_in(api, clinician):
    api.force_authenticate(clinician)
    return api


def test_a_clinician_reads_their_patients_vital_signs_newest_first(
    signed_in, client, device, patient
):
    ten_minutes_ago = minutes_ago(10)
    upload(
        client,
        device,
        [
            reading("8867-4", 70, "/min", minutes_ago(30)),
            reading("8867-4", 90, "/min", ten_minutes_ago),
            reading("2708-6", 97, "%", minutes_ago(20)),
        ],
    )
    response = signed_in.get(observations_url(patient))
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["code"], r["value"]) for r in rows] == [
        ("8867-4", 90.0),
        ("2708-6", 97.0),
        ("8867-4", 70.0),
    ]
    assert rows[0]["unit"] == "/min"
    assert rows[0]["device_serial"] == "HUB-1"
    assert rows[0]["time"] == iso(ten_minutes_ago)


def test_level_of_consciousness_comes_back_as_its_letter(
    signed_in, client, device, patient
):
    upload(client, device, [reading("80288-4", "V", "{ACVPU}", minutes_ago(5))])
    row = signed_in.get(observations_url(patient)).json()["results"][0]
    assert (row["value"], row["text"]) == (None, "V")


def test_it_filters_by_code_and_by_a_time_range(signed_in, client, device, patient):
    # One clock reading for the whole test: a second ticking between the upload
    # and the query must not move the window's edges off the readings.
    now = minutes_ago(0)

    def ago(n):
        return now - timedelta(minutes=n)

    upload(
        client,
        device,
        [reading("8867-4", 60 + n, "/min", ago(n)) for n in range(1, 6)]
        + [reading("2708-6", 95, "%", ago(3))],
    )
    response = signed_in.get(
        observations_url(patient),
        {"code": "8867-4", "since": iso(ago(4)), "until": iso(ago(2))},
    )
    assert response.status_code == 200
    # since is inclusive, until exclusive: half-open windows tile without overlap.
    assert [r["value"] for r in response.json()["results"]] == [63.0, 64.0]


def test_an_unknown_code_is_refused_with_the_accepted_codes(signed_in, patient):
    response = signed_in.get(observations_url(patient), {"code": "1234-5"})
    assert response.status_code == 400
    message = response.json()["code"][0]
    assert "1234-5" in message
    assert "8867-4" in message


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2025-01-31T08:00:00", "with a zone"),
        ("2025-01-31", "with a zone"),
        ("yesterday", "not an ISO 8601 time"),
    ],
)
def test_a_time_without_zone_or_not_iso_is_refused(signed_in, patient, value, words):
    response = signed_in.get(observations_url(patient), {"since": value})
    assert response.status_code == 400
    assert words in response.json()["since"][0]


def test_an_empty_time_range_is_refused(signed_in, patient):
    response = signed_in.get(
        observations_url(patient),
        {"since": iso(minutes_ago(1)), "until": iso(minutes_ago(2))},
    )
    assert response.status_code == 400
    assert "later than since" in response.json()["until"][0]


def test_pages_follow_a_cursor_without_repeating_rows_as_new_ones_arrive(
    signed_in, client, device, patient
):
    upload(
        client,
        device,
        [reading("8867-4", 60 + n, "/min", minutes_ago(10 + n)) for n in range(5)],
    )
    first = signed_in.get(observations_url(patient), {"page_size": 2}).json()
    upload(client, device, [reading("8867-4", 99, "/min", minutes_ago(1))])
    second = signed_in.get(first["next"]).json()
    third = signed_in.get(second["next"]).json()
    values = [r["value"] for page in (first, second, third) for r in page["results"]]
    assert values == [60.0, 61.0, 62.0, 63.0, 64.0]
    assert third["next"] is None


@pytest.mark.parametrize("where", ["observations", "ecg"])
def test_another_teams_patient_is_not_found_and_the_attempt_is_audited(
    signed_in, clinician, other_patient, where
):
    response = signed_in.get(f"/api/v1/patients/{other_patient.pk}/{where}/")
    assert response.status_code == 404
    event = AuditEvent.objects.get(outcome=AuditEvent.Outcome.DENIED)
    assert event.actor_user == clinician
    assert event.details == {"patient_id": other_patient.pk}


def test_a_hidden_patient_looks_exactly_like_one_that_does_not_exist(
    signed_in, other_patient
):
    hidden = signed_in.get(observations_url(other_patient))
    missing = signed_in.get(f"/api/v1/patients/{other_patient.pk + 1000}/observations/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_the_visibility_check_comes_before_parameter_checks(signed_in, other_patient):
    response = signed_in.get(observations_url(other_patient), {"code": "nonsense"})
    assert response.status_code == 404


def test_an_admin_reads_any_patient_of_their_organisation(
    api, admin, client, other_device, other_patient
):
    upload(client, other_device, [reading("8867-4", 80, "/min", minutes_ago(2))])
    api.force_authenticate(admin)
    response = api.get(observations_url(other_patient))
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def test_an_admin_of_another_organisation_gets_not_found(api, patient):
    elsewhere = Organisation.objects.create(name="Elsewhere General")
    outsider = make_staff(elsewhere, "outsider", role=Role.ADMIN)
    make_patient(elsewhere, "MRN-X")
    api.force_authenticate(outsider)
    assert api.get(observations_url(patient)).status_code == 404


@pytest.mark.parametrize("path", ["observations/", "ecg/", "ecg/1/"])
def test_a_device_token_is_not_a_clinician_credential(api, device, patient, path):
    response = api.get(
        f"/api/v1/patients/{patient.pk}/{path}",
        HTTP_AUTHORIZATION=f"Bearer {device.token}",
    )
    assert response.status_code == 401


def test_an_anonymous_caller_is_unauthenticated(api, patient):
    assert api.get(observations_url(patient)).status_code == 401


def test_a_program_reads_with_a_clinician_token(api, clinician, patient):
    token = issue_clinician_token(user=clinician)
    response = api.get(observations_url(patient), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200


def test_the_dashboard_reads_with_its_session(client, clinician, patient):
    assert client.login(username="clinician", password=PASSWORD)
    assert client.get(observations_url(patient)).status_code == 200


def test_reading_observations_is_audited_with_what_was_shown(
    signed_in, clinician, client, device, patient
):
    upload(client, device, [reading("8867-4", 70, "/min", minutes_ago(3))])
    signed_in.get(observations_url(patient))
    event = AuditEvent.objects.get(action="observation.list")
    assert (event.actor_user, event.patient) == (clinician, patient)
    assert event.details["observation_ids"] == [Observation.objects.get().pk]


def test_the_ecg_list_names_each_segment_without_its_samples(
    signed_in, client, device, patient
):
    upload(
        client,
        device,
        ecg=[strip("I", minutes_ago(3)), strip("II", minutes_ago(1), fs_hz=500)],
    )
    response = signed_in.get(ecg_url(patient))
    assert response.status_code == 200
    newest = response.json()["results"][0]
    assert set(newest) == {
        "id",
        "lead",
        "fs_hz",
        "start",
        "duration_s",
        "sample_count",
        "device_serial",
    }
    assert (newest["lead"], newest["fs_hz"], newest["sample_count"]) == ("II", 500, 3)
    assert newest["duration_s"] == pytest.approx(3 / 500)
    assert newest["device_serial"] == "HUB-1"
    assert len(response.json()["results"]) == 2


def test_the_ecg_list_starts_from_since(signed_in, client, device, patient):
    upload(
        client, device, ecg=[strip("I", minutes_ago(30)), strip("II", minutes_ago(5))]
    )
    response = signed_in.get(ecg_url(patient), {"since": iso(minutes_ago(10))})
    assert [s["lead"] for s in response.json()["results"]] == ["II"]
    assert signed_in.get(ecg_url(patient), {"since": "today"}).status_code == 400


def test_a_segment_comes_with_its_samples_as_integer_microvolts(
    signed_in, clinician, client, device, patient
):
    upload(client, device, ecg=[strip(samples=[0.012, -1.5, 2.25], unit="mV")])
    segment = EcgSegment.objects.get()
    response = signed_in.get(segment_url(patient, segment))
    assert response.status_code == 200
    body = response.json()
    assert body["samples"] == [12, -1500, 2250]
    assert (body["unit"], body["fs_hz"], body["lead"]) == ("uV", 250, "II")
    event = AuditEvent.objects.get(action="ecg.read")
    assert (event.patient, event.object_id) == (patient, str(segment.pk))


def test_a_segment_is_reached_only_through_its_own_patient(
    api, admin, client, other_device, patient
):
    upload(client, other_device, ecg=[strip()])
    segment = EcgSegment.objects.get()
    api.force_authenticate(admin)
    assert api.get(segment_url(patient, segment)).status_code == 404
    assert api.get(segment_url(segment.patient, segment)).status_code == 200


def test_a_segment_of_a_hidden_patient_is_not_found(
    signed_in, client, other_device, other_patient
):
    upload(client, other_device, ecg=[strip()])
    segment = EcgSegment.objects.get()
    assert signed_in.get(segment_url(other_patient, segment)).status_code == 404


@pytest.mark.parametrize(
    "query", ["limit=7215302615461865415978149478400", "offset=10000000000000000000000"]
)
def test_a_huge_limit_or_offset_gives_a_page_not_a_server_error(
    signed_in, patient, query
):
    """Found by `make fuzz`: the huge integer reached SQLite and gave a 500."""
    response = signed_in.get(f"/api/v1/patients/?{query}")
    assert response.status_code == 200
    page = response.json()
    assert page["count"] == 1
    assert len(page["results"]) <= 1000
    if query.startswith("offset"):
        assert page["results"] == []
