"""GET /api/v1/fhir/Observation and the mapping of stored rows to FHIR R4 JSON.

fhir.resources 8.3.0 ships R5, R4B and STU3 models but no R4 (4.0.1); R4B (4.3.0)
keeps R4's Bundle, Observation and SampledData, so it validates what we emit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation as FhirObservation
from fhir.resources.R4B.operationoutcome import OperationOutcome

from security.models import AuditEvent
from telemetry import fhir
from tests.test_clinician_read_api import iso, minutes_ago, reading, strip, upload

URL = "/api/v1/fhir/Observation"
MOMENT = datetime(2025, 1, 31, 8, 0, tzinfo=UTC)


def row(pk, code, value, unit, time=MOMENT, device_id=7, text=""):
    return SimpleNamespace(
        pk=pk,
        patient_id=3,
        device_id=device_id,
        code=code,
        value=value,
        text=text,
        unit=unit,
        time=time,
    )


def resources(rows) -> list[dict]:
    return [entry.resource for entry in fhir.vital_sign_entries(rows)]


def coding(resource: dict) -> tuple[str, str]:
    first = resource["code"]["coding"][0]
    return first["system"], first["code"]


# The mapping, without a database.


def test_a_vital_sign_is_a_final_loinc_coded_ucum_quantity():
    (resource,) = resources([row(1, "8867-4", 72.0, "/min")])
    FhirObservation.model_validate(resource)
    assert resource["status"] == "final"
    assert resource["category"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "vital-signs",
        "display": "Vital Signs",
    }
    assert resource["code"]["coding"] == [
        {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}
    ]
    assert resource["valueQuantity"] == {
        "value": 72.0,
        "unit": "/min",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    }
    assert resource["effectiveDateTime"] == "2025-01-31T08:00:00Z"
    assert resource["subject"] == {"reference": "Patient/3"}
    assert resource["device"] == {"reference": "Device/7"}


def test_systolic_and_diastolic_by_one_device_at_one_moment_make_one_panel():
    (panel,) = resources(
        [row(1, "8462-4", 80.0, "mm[Hg]"), row(2, "8480-6", 120.0, "mm[Hg]")]
    )
    FhirObservation.model_validate(panel)
    assert coding(panel) == ("http://loinc.org", "85354-9")
    assert "valueQuantity" not in panel
    components = {
        c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in panel["component"]
    }
    assert components["8480-6"]["value"] == 120.0
    assert components["8462-4"]["value"] == 80.0
    assert components["8462-4"]["code"] == "mm[Hg]"


@pytest.mark.parametrize(
    "diastolic",
    [
        row(2, "8462-4", 80.0, "mm[Hg]", device_id=8),
        row(2, "8462-4", 80.0, "mm[Hg]", time=MOMENT - timedelta(seconds=1)),
    ],
    ids=["another device", "another moment"],
)
def test_readings_from_another_device_or_moment_stay_unpaired(diastolic):
    out = resources([row(1, "8480-6", 120.0, "mm[Hg]"), diastolic])
    assert [coding(r)[1] for r in out] == ["8480-6", "8462-4"]
    assert all("valueQuantity" in r for r in out)


def test_two_readings_at_one_moment_pair_one_to_one():
    out = resources(
        [
            row(1, "8480-6", 120.0, "mm[Hg]"),
            row(2, "8480-6", 121.0, "mm[Hg]"),
            row(3, "8462-4", 80.0, "mm[Hg]"),
        ]
    )
    assert [coding(r)[1] for r in out] == ["85354-9", "8480-6"]


def test_level_of_consciousness_is_a_codeable_concept_with_the_letter():
    (resource,) = resources([row(1, "80288-4", None, "{ACVPU}", text="C")])
    FhirObservation.model_validate(resource)
    assert resource["valueCodeableConcept"] == {"text": "C"}
    assert "valueQuantity" not in resource


def test_oxygen_flow_is_coded_as_a_flow_not_a_concentration():
    flow, fraction = resources(
        [row(1, "3150-0", 2.0, "L/min"), row(2, "3150-0", 28.0, "%")]
    )
    assert coding(flow)[1] == "3151-8"
    assert coding(fraction)[1] == "3150-0"


def test_an_ecg_segment_is_sampled_data_in_integer_microvolts():
    segment = SimpleNamespace(
        pk=9, patient_id=3, device_id=7, lead="II", fs_hz=250, start=MOMENT
    )
    resource = fhir.ecg_entry(segment, np.array([12, -1500, 2250])).resource
    FhirObservation.model_validate(resource)
    assert resource["category"][0]["coding"][0]["code"] == "procedure"
    assert coding(resource) == ("urn:oid:2.16.840.1.113883.6.24", "131330")
    assert resource["valueSampledData"] == {
        "origin": {
            "value": 0,
            "unit": "µV",
            "system": "http://unitsofmeasure.org",
            "code": "uV",
        },
        "period": 4.0,
        "factor": 1,
        "dimensions": 1,
        "data": "12 -1500 2250",
    }


@pytest.mark.parametrize(
    ("lead", "code"),
    [
        ("I", "131329"),
        ("II", "131330"),
        ("III", "131389"),
        ("aVR", "131390"),
        ("aVL", "131391"),
        ("aVF", "131392"),
        ("V1", "131331"),
        ("V6", "131336"),
    ],
)
def test_each_lead_has_its_mdc_code(lead, code):
    assert fhir.MDC_LEAD_CODES[lead] == code


def test_every_lead_a_device_may_send_has_an_mdc_code():
    from telemetry.contract import ECG_LEADS

    assert set(fhir.MDC_LEAD_CODES) == set(ECG_LEADS)


# The endpoint.


@pytest.fixture
def signed_in(api, clinician):
    api.force_authenticate(clinician)
    return api


def search(api, **params):
    return api.get(URL, params)


def bundle_of(response) -> dict:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/fhir+json"
    body = response.json()
    Bundle.model_validate(body)
    return body


def test_the_search_answers_a_valid_searchset_bundle(
    signed_in, client, device, patient
):
    at = minutes_ago(5)
    upload(
        client,
        device,
        [
            reading("8867-4", 72, "/min", at),
            reading("8480-6", 120, "mm[Hg]", at),
            reading("8462-4", 80, "mm[Hg]", at),
            reading("80288-4", "A", "{ACVPU}", at),
            reading("8310-5", 98.6, "[degF]", at),
        ],
        ecg=[strip("V2", minutes_ago(1))],
    )
    body = bundle_of(search(signed_in, patient=patient.pk))
    assert (body["type"], body["total"]) == ("searchset", 5)
    entry = body["entry"][0]
    assert entry["fullUrl"] == (
        f"http://testserver/api/v1/fhir/Observation/{entry['resource']['id']}"
    )
    codes = [coding(e["resource"])[1] for e in body["entry"]]
    assert codes[0] == "131332"  # the ECG is the newest
    assert sorted(codes[1:]) == ["80288-4", "8310-5", "85354-9", "8867-4"]
    subjects = {e["resource"]["subject"]["reference"] for e in body["entry"]}
    assert subjects == {f"Patient/{patient.pk}"}


def test_the_patient_may_be_given_as_a_reference(signed_in, client, device, patient):
    upload(client, device, [reading("8867-4", 72, "/min", minutes_ago(1))])
    body = bundle_of(search(signed_in, patient=f"Patient/{patient.pk}"))
    assert body["total"] == 1


def test_code_selects_readings_by_loinc_or_mdc_with_or_without_system(
    signed_in, client, device, patient
):
    at = minutes_ago(5)
    upload(
        client,
        device,
        [
            reading("8867-4", 72, "/min", at),
            reading("8480-6", 120, "mm[Hg]", at),
            reading("8462-4", 80, "mm[Hg]", at),
        ],
        ecg=[strip("I", at), strip("II", at)],
    )

    def codes(code: str) -> list[str]:
        body = bundle_of(search(signed_in, patient=patient.pk, code=code))
        return sorted(coding(e["resource"])[1] for e in body["entry"])

    assert codes("http://loinc.org|8867-4") == ["8867-4"]
    assert codes("85354-9") == ["85354-9"]
    assert codes("131329") == ["131329"]
    assert codes("131328,8867-4") == ["131329", "131330", "8867-4"]


def test_date_bounds_the_search(signed_in, client, device, patient):
    # One anchor for every time, so the bounds sit exactly where the readings are.
    anchor = minutes_ago(0)
    at = {n: anchor - timedelta(minutes=n) for n in (1, 5, 6, 9)}
    upload(
        client,
        device,
        [reading("8867-4", 60 + n, "/min", at[n]) for n in (1, 5, 9)],
    )
    response = signed_in.get(
        URL,
        {
            "patient": patient.pk,
            "date": [f"ge{iso(at[6])}", f"lt{iso(at[1])}"],
        },
    )
    body = bundle_of(response)
    assert [e["resource"]["valueQuantity"]["value"] for e in body["entry"]] == [65.0]


def test_count_keeps_the_newest_and_total_counts_every_match(
    signed_in, client, device, patient
):
    upload(
        client,
        device,
        [reading("8867-4", 60 + n, "/min", minutes_ago(n)) for n in range(1, 8)],
    )
    body = bundle_of(search(signed_in, patient=patient.pk, _count=3))
    assert body["total"] == 7
    assert [e["resource"]["valueQuantity"]["value"] for e in body["entry"]] == [
        61.0,
        62.0,
        63.0,
    ]


def test_the_count_cut_never_splits_a_blood_pressure_pair(
    signed_in, client, device, patient
):
    earlier, later = minutes_ago(5), minutes_ago(1)
    pair = [
        reading("8480-6", 120, "mm[Hg]", earlier),
        reading("8462-4", 80, "mm[Hg]", earlier),
    ]
    # The same moment uploaded twice: rows run diastolic, diastolic, systolic,
    # systolic, and a cut after three rows would orphan a diastolic.
    upload(client, device, [reading("8867-4", 70, "/min", later), *pair])
    upload(client, device, pair)
    body = bundle_of(search(signed_in, patient=patient.pk, _count=2))
    assert body["total"] == 3
    assert [coding(e["resource"])[1] for e in body["entry"]] == ["8867-4", "85354-9"]


def test_the_search_is_audited(signed_in, clinician, client, device, patient):
    upload(client, device, [reading("8867-4", 72, "/min", minutes_ago(1))])
    body = bundle_of(search(signed_in, patient=patient.pk))
    event = AuditEvent.objects.get(action="fhir.observation.search")
    assert (event.actor_user, event.patient, event.outcome) == (
        clinician,
        patient,
        AuditEvent.Outcome.SUCCESS,
    )
    assert event.details["resource_ids"] == [body["entry"][0]["resource"]["id"]]


def test_a_hidden_patient_gives_an_empty_bundle_and_a_denied_audit(
    signed_in, client, other_device, other_patient
):
    upload(client, other_device, [reading("8867-4", 72, "/min", minutes_ago(1))])
    hidden = bundle_of(search(signed_in, patient=other_patient.pk))
    missing = bundle_of(search(signed_in, patient=other_patient.pk + 1000))
    assert hidden["total"] == missing["total"] == 0
    assert hidden["entry"] == missing["entry"] == []
    event = AuditEvent.objects.filter(action="fhir.observation.search").first()
    assert event.outcome == AuditEvent.Outcome.DENIED


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({}, "patient"),
        ({"patient": "Device/1"}, "Patient/<id>"),
        ({"patient": "1", "code": "1234-5"}, "unknown code 1234-5"),
        ({"patient": "1", "date": "2025-01-31T08:00:00Z"}, "ge, gt, le or lt"),
        ({"patient": "1", "date": "ge2025-01-31T08:00:00"}, "with a zone"),
        ({"patient": "1", "_count": "100000"}, "_count"),
    ],
)
def test_a_bad_parameter_is_an_operation_outcome(signed_in, params, words):
    response = search(signed_in, **params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/fhir+json"
    outcome = response.json()
    OperationOutcome.model_validate(outcome)
    assert words in outcome["issue"][0]["diagnostics"]


def test_a_device_token_is_refused(api, device, patient):
    response = api.get(
        URL, {"patient": patient.pk}, HTTP_AUTHORIZATION=f"Bearer {device.token}"
    )
    assert response.status_code == 401
    OperationOutcome.model_validate(response.json())


def test_it_answers_fhir_json_whatever_the_client_accepts(signed_in, patient):
    response = signed_in.get(URL, {"patient": patient.pk}, HTTP_ACCEPT="text/html")
    assert response["Content-Type"] == "application/fhir+json"
