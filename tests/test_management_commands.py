"""provision_device and seed_demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def _ignoring_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    "started",
    [None, _ignoring_sigint],
    ids=["from-a-terminal", "in-the-background-of-a-shell"],
)
def test_the_demo_stops_every_process_it_started_when_it_is_terminated(
    tmp_path, started
):
    """``kill`` (SIGTERM) on make demo's process used to leave Daphne, the periodic
    runner and the simulator running without it; and a demo started with ``&``
    (SIGINT ignored, inherited by the children) left them running after it ended."""
    child = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid()));"
    child += " time.sleep(120)"
    runner = (
        "import os, sys, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'rpm.settings';"
        " django.setup(); from frontend.management.commands.demo import run_together;"
        f" run_together([[sys.executable, '-c', {child!r}, p] for p in sys.argv[1:]])"
    )
    pid_files = [tmp_path / "a.pid", tmp_path / "b.pid"]
    demo = subprocess.Popen(
        [sys.executable, "-c", runner, *map(str, pid_files)],
        env={**os.environ, "DEBUG": "true"},
        preexec_fn=started,
    )
    try:
        deadline = time.monotonic() + 30
        while not all(f.exists() and f.read_text() for f in pid_files):
            assert time.monotonic() < deadline, "the children did not start"
            time.sleep(0.1)
        children = [int(f.read_text()) for f in pid_files]
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=30) == 0
    finally:
        demo.kill()
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
