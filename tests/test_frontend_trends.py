"""Trend series for the patient page's charts, and the alert panel's directory."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from telemetry.contract import fingerprint, parse_batch
from telemetry.models import Batch
from telemetry.processing import process_batch
from telemetry.services import record_batch
from tests.test_telemetry_ingest import batch, obs

pytestmark = pytest.mark.django_db


def store(device, observations) -> None:
    parsed, problems = parse_batch(
        json.dumps(batch(observations=observations, ecg=[])).encode()
    )
    assert not problems
    stored = record_batch(
        device=device.device, batch=parsed, fingerprint=fingerprint(parsed)
    )
    process_batch(Batch.objects.get(batch_id=stored.answer["batch_id"]).pk)


def trends(client, patient, period: str = "24h"):
    return client.get(reverse("patient-trends", args=[patient.pk]), {"range": period})


def chart(body: dict, key: str) -> dict:
    return next(c for c in body["charts"] if c["key"] == key)


def test_heart_rate_readings_are_averaged_into_five_minute_buckets(
    client, clinician, device, patient
):
    t = timezone.now() - timedelta(minutes=30)
    t = t.replace(minute=t.minute - t.minute % 5, second=0, microsecond=0)
    store(device, [obs("8867-4", 60, "/min", t), obs("8867-4", 80, "/min", t)])
    client.force_login(clinician)
    body = trends(client, patient).json()
    line = chart(body, "hr")["lines"][0]
    slot = body["t"].index(int(t.timestamp()))
    assert (line["mean"][slot], line["min"][slot], line["max"][slot]) == (70, 60, 80)
    assert sum(v is not None for v in line["mean"]) == 1


def test_seven_days_come_in_hourly_buckets_with_news2(
    client, clinician, device, patient
):
    store(device, [obs("8867-4", 135, "/min")])
    client.force_login(clinician)
    body = trends(client, patient, "7d").json()
    assert body["t"][1] - body["t"][0] == 3600
    assert [v for v in chart(body, "news2")["lines"][0]["mean"] if v] == [3]


def test_readings_older_than_the_period_are_left_out(
    client, clinician, device, patient
):
    store(device, [obs("8867-4", 72, "/min", timezone.now() - timedelta(days=2))])
    client.force_login(clinician)
    assert chart(trends(client, patient).json(), "hr")["lines"] == []


def test_an_unknown_period_is_a_bad_request(client, clinician, patient):
    client.force_login(clinician)
    assert trends(client, patient, "1y").status_code == 400


def test_another_teams_trends_are_not_found(
    client, clinician, other_clinician, other_patient
):
    client.force_login(clinician)
    assert trends(client, other_patient).status_code == 404


def test_a_script_that_is_signed_out_gets_401(client, patient):
    assert trends(client, patient).status_code == 401


def test_the_directory_names_only_the_clinicians_patients(
    client, clinician, other_clinician, patient, other_patient
):
    client.force_login(clinician)
    body = client.get(reverse("patient-directory")).json()
    assert body == {str(patient.pk): {"mrn": "MRN-1", "name": "Ada Lovelace"}}
