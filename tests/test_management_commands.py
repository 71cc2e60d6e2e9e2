"""provision_device and seed_demo."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from patients.auth import device_for_token
from patients.models import Device, Patient, User


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_provision_device_prints_a_token_that_authenticates(patient):
    printed = json.loads(
        run(
            "provision_device",
            "--patient",
            "MRN-1",
            "--serial",
            "T-1",
            "--kind",
            "thermometer",
            "--json",
        )
    )
    assert set(printed) == {"device_id", "serial", "token"}
    assert device_for_token(printed["token"]).pk == printed["device_id"]
    assert Device.objects.get(serial="T-1").patient == patient


def test_provision_device_refuses_an_unknown_patient(db):
    with pytest.raises(CommandError, match="no patient"):
        run(
            "provision_device",
            "--patient",
            "NOPE",
            "--serial",
            "T-1",
            "--kind",
            "thermometer",
        )


def test_provision_device_refuses_a_serial_twice(patient):
    run(
        "provision_device",
        "--patient",
        "MRN-1",
        "--serial",
        "T-1",
        "--kind",
        "thermometer",
    )
    with pytest.raises(CommandError, match=r"(?i)serial"):
        run(
            "provision_device",
            "--patient",
            "MRN-1",
            "--serial",
            "T-1",
            "--kind",
            "thermometer",
        )


def test_seed_demo_makes_the_ward_described(db, settings):
    settings.DEBUG = True
    demo = json.loads(run("seed_demo", "--json"))
    assert [p["mrn"] for p in demo["patients"]] == [
        f"DEMO-{n:03d}" for n in range(1, 13)
    ]
    roles = sorted(c["role"] for c in demo["clinicians"])
    assert roles == ["admin", "charge_nurse", "clinician", "clinician"]
    nurse = next(c for c in demo["clinicians"] if c["username"] == "nurse.ada")
    assert len(nurse["patients"]) == 6
    for device in demo["devices"]:
        assert device_for_token(device["token"]).patient.mrn == device["patient_mrn"]


def test_seed_demo_is_idempotent_and_rotates_tokens(db, settings):
    settings.DEBUG = True
    first = json.loads(run("seed_demo", "--json"))
    second = json.loads(run("seed_demo", "--json"))
    assert Patient.objects.count() == 12
    assert User.objects.count() == 4
    assert Device.objects.count() == len(second["devices"])
    assert device_for_token(first["devices"][0]["token"]) is None
    assert device_for_token(second["devices"][0]["token"]) is not None


def test_seed_demo_refuses_to_run_in_production(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        run("seed_demo")
