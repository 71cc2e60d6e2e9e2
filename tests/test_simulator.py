"""The simulator's scenarios, fed through the real upload API, processing and
alert engine: each raises the alerts a clinician would expect, and only those."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from alerts.models import Alert
from alerts.services import detect_stale_devices
from patients.models import Device
from patients.services import provision_device
from telemetry.models import News2Score
from telemetry.simulator.replay import ReplayStream, load_record
from telemetry.simulator.scenarios import (
    OFFLINE_FOR_S,
    OFFLINE_FROM_S,
    SCENARIOS,
    WARD_MIX,
    assign,
)
from telemetry.simulator.ward import ECG_FS, Emission, SimulatedPatient

URL = "/api/v1/telemetry/batches"
TICK_S = 5.0

# How long (s of data) and how compressed each scenario runs in the test.
RUNS = {
    "stable": (240, 1.0),
    "sepsis": (480, 40.0),
    "hypoxia": (300, 20.0),
    "af": (200, 1.0),
    "bradycardia": (300, 1.0),
    "lead_off": (240, 1.0),
    "offline": (OFFLINE_FROM_S, 1.0),
    "low_battery": (300, 30.0),
    "clock_skew": (60, 1.0),
}


def body(emission: Emission) -> dict:
    sent = timezone.now() + timedelta(seconds=emission.clock_offset_s)
    iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    return {
        "batch_id": str(uuid.uuid4()),
        "sent_at": iso(sent),
        "battery_pct": emission.battery_pct,
        "observations": [
            {"code": r.code, "value": r.value, "unit": r.unit, "time": iso(r.time)}
            for r in emission.readings
        ],
        "ecg": [
            {
                "lead": s.lead,
                "fs_hz": s.fs_hz,
                "start": iso(s.start),
                "unit": "uV",
                "samples": s.samples_uv,
            }
            for s in emission.strips
        ],
    }


@pytest.fixture
def devices(patient) -> dict[str, str]:
    return {
        role: provision_device(
            serial=f"{role}-1", kind=kind, patient=patient, expected_interval_s=every
        ).token
        for role, kind, every in [
            ("HUB", Device.Kind.HUB, 60),
            ("ECG", Device.Kind.ECG_PATCH, 30),
        ]
    }


def run_scenario(name, client, devices, capture) -> None:
    """Every tick of the scenario, uploaded as the devices would while online."""
    seconds, compression = RUNS[name]
    start = timezone.now() - timedelta(seconds=seconds + 30)
    simulated = SimulatedPatient(
        SCENARIOS[name], start, seed=7, compression=compression
    )
    for k in range(1, int(seconds / TICK_S) + 1):
        for emission in simulated.tick(start + timedelta(seconds=k * TICK_S)):
            if not emission.online or not (emission.readings or emission.strips):
                continue
            with capture(execute=True):
                answer = client.post(
                    URL,
                    data=json.dumps(body(emission)),
                    content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {devices[emission.role]}",
                )
            assert answer.status_code == 201, answer.content


def raised(patient) -> set[str]:
    return set(Alert.objects.filter(patient=patient).values_list("kind", flat=True))


@pytest.mark.parametrize("name", sorted(set(SCENARIOS) - {"offline"}))
def test_each_scenario_raises_the_alerts_a_clinician_expects(
    name, client, patient, devices, django_capture_on_commit_callbacks
):
    run_scenario(name, client, devices, django_capture_on_commit_callbacks)
    scenario = SCENARIOS[name]
    kinds = raised(patient)
    assert scenario.expected <= kinds, f"missing {scenario.expected - kinds}"
    assert kinds <= scenario.expected | scenario.tolerated, (
        f"unexpected {kinds - scenario.expected - scenario.tolerated}"
    )


def test_a_device_offline_longer_than_its_grace_is_reported_stale(
    client, patient, devices, django_capture_on_commit_callbacks
):
    run_scenario("offline", client, devices, django_capture_on_commit_callbacks)
    assert raised(patient) == set()
    detect_stale_devices(now=timezone.now() + timedelta(seconds=OFFLINE_FOR_S))
    assert raised(patient) == SCENARIOS["offline"].expected


def test_in_sepsis_news2_climbs_through_its_bands_in_order(
    client, patient, devices, django_capture_on_commit_callbacks
):
    run_scenario("sepsis", client, devices, django_capture_on_commit_callbacks)
    risks = list(News2Score.objects.order_by("as_of").values_list("risk", flat=True))
    firsts = [risks.index(r) for r in ("low", "medium", "high")]
    assert firsts == sorted(firsts)


def test_the_ward_mix_keeps_most_patients_stable_and_shows_every_scenario():
    ward = assign(12, "mixed")
    clinically_stable = [
        s
        for s in ward
        if not s.expected
        or s.name in {"lead_off", "offline", "low_battery", "clock_skew"}
    ]
    assert len(clinically_stable) > len(ward) / 2
    assert {s.name for s in ward} == set(SCENARIOS)
    assert [s.name for s in assign(14, "mixed")][12:] == ["stable", "stable"]
    assert len(WARD_MIX) == 12


def test_a_simulated_ecg_joins_its_strips_without_a_seam():
    start = timezone.now()
    simulated = SimulatedPatient(SCENARIOS["stable"], start, seed=1)
    strips = [
        s
        for k in range(1, 9)
        for e in simulated.tick(start + timedelta(seconds=k * 5.0))
        for s in e.strips
    ]
    assert [s.start - start for s in strips] == [timedelta(0), timedelta(seconds=20)]
    joined = np.array(strips[0].samples_uv + strips[1].samples_uv)
    step = np.abs(np.diff(joined))
    assert step[len(strips[0].samples_uv) - 1] < 5 * np.median(step) + 50


def test_a_replayed_record_is_resampled_to_the_device_rate(tmp_path):
    import wfdb

    fs, seconds = 360, 12
    t = np.arange(fs * seconds) / fs
    wave = np.sin(2 * np.pi * 1.25 * t)[:, None]  # 75 "beats" a minute
    wfdb.wrsamp(
        "rec",
        fs=fs,
        units=["mV"],
        sig_name=["MLII"],
        p_signal=wave,
        write_dir=str(tmp_path),
    )
    signal = load_record(tmp_path / "rec", ECG_FS)
    assert len(signal) == ECG_FS * seconds
    spectrum = np.abs(np.fft.rfft(signal))
    peak_hz = np.fft.rfftfreq(len(signal), 1 / ECG_FS)[spectrum.argmax()]
    assert peak_hz == pytest.approx(1.25, abs=0.1)
    stream = ReplayStream(signal, ECG_FS)
    first, second = stream.segment(10), stream.segment(10)
    assert len(first) == len(second) == 10 * ECG_FS
    assert np.allclose(second[: 2 * ECG_FS], signal[10 * ECG_FS :])
    assert np.allclose(second[2 * ECG_FS :], signal[: 8 * ECG_FS])
