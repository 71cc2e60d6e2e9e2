"""The OWASP API Security Top 10 (2023) as a matrix: every object endpoint and
socket against five actors — the patient's care-team clinician, a clinician of
another team, an admin, another patient's device, and nobody.

Each test names its OWASP item (API1 … API10) in its name or docstring.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from django.urls import get_resolver
from django.utils import timezone

from alerts import services as alert_services
from alerts.models import Alert, AlertEvent
from alerts.rules import Finding
from alerts.services import Subject
from frontend.models import PatientNote
from patients.services import issue_clinician_token
from security import kme
from security.models import DeviceSession
from telemetry.models import Batch, EcgSegment, Observation
from tests.test_device_sessions import open_session
from tests.test_kme_etsi014 import master, slave_id
from tests.test_telemetry_ingest import batch, now, obs

__all__ = ["master"]  # the fixture, used by the key-request case

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"
ACTORS = ("care_team", "other_team", "admin", "other_device", "anonymous")
STAFF = {"care_team": "clinician", "other_team": "other_clinician", "admin": "admin"}


@pytest.fixture
def world(client, patient, device, clinician, other_clinician, admin, other_device):
    """The care team's patient with readings, an ECG strip and an open alert."""
    response = client.post(
        f"{API}/telemetry/batches",
        json.dumps(batch()),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {device.token}",
    )
    assert response.status_code == 201
    [alert] = alert_services.apply_outcomes(
        subject=Subject.of_patient(patient),
        outcomes=[Finding("news2", "medium", timezone.now(), "NEWS2 5", {})],
    )
    return {
        "patient": patient.pk,
        "segment": EcgSegment.objects.get().pk,
        "alert": alert.pk,
    }


def headers_of(actor: str, request: pytest.FixtureRequest) -> dict[str, str]:
    if actor in STAFF:
        user = request.getfixturevalue(STAFF[actor])
        return {"HTTP_AUTHORIZATION": f"Token {issue_clinician_token(user=user)}"}
    if actor == "other_device":
        token = request.getfixturevalue("other_device").token
        return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    return {}


# --- API1 object level and API5 function level: reads -----------------------------

READS = [
    "/patients/{patient}/",
    "/patients/{patient}/observations/",
    "/patients/{patient}/ecg/",
    "/patients/{patient}/ecg/{segment}/",
    "/alerts/{alert}/",
    "/alerts/{alert}/events/",
]
# A patient another team cares for does not exist for them (404, never 403); device
# tokens and no credentials are refused before any object is looked up (401).
READ_STATUS = {
    "care_team": 200,
    "other_team": 404,
    "admin": 200,
    "other_device": 401,
    "anonymous": 401,
}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("path", READS)
def test_api1_api5_only_the_care_team_and_admins_read_a_patients_objects(
    client, world, request, path, actor
):
    response = client.get(API + path.format(**world), **headers_of(actor, request))
    assert response.status_code == READ_STATUS[actor]


FHIR_TOTAL = {"care_team": 3, "admin": 3, "other_team": 0}


@pytest.mark.parametrize("actor", ACTORS)
def test_api1_fhir_search_shows_another_teams_patient_as_empty(
    client, world, request, actor
):
    response = client.get(
        f"{API}/fhir/Observation",
        {"patient": world["patient"]},
        **headers_of(actor, request),
    )
    if actor in FHIR_TOTAL:
        assert response.status_code == 200
        assert response.json()["total"] == FHIR_TOTAL[actor]
    else:
        assert response.status_code == 401
        assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("actor", ["care_team", "other_team", "admin"])
def test_api1_lists_hold_only_what_the_caller_may_see(client, world, request, actor):
    headers = headers_of(actor, request)
    patients = client.get(f"{API}/patients/", **headers).json()["results"]
    alerts = client.get(f"{API}/alerts/", **headers).json()["results"]
    visible = actor != "other_team"
    assert (world["patient"] in {p["id"] for p in patients}) is visible
    assert (world["alert"] in {a["id"] for a in alerts}) is visible


# --- API1 and API5: writes --------------------------------------------------------

ACTIONS = [
    ("acknowledge", {"note": "seen"}, 200),
    ("comments", {"text": "called the patient"}, 201),
    ("snooze", {"minutes": 10}, 200),
    ("resolve", {"resolution": "false alarm"}, 200),
]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(("action", "body", "allowed"), ACTIONS)
def test_api1_api5_only_the_care_team_and_admins_act_on_an_alert(
    client, world, request, actor, action, body, allowed
):
    events = AlertEvent.objects.count()
    response = client.post(
        f"{API}/alerts/{world['alert']}/{action}/",
        json.dumps(body),
        content_type="application/json",
        **headers_of(actor, request),
    )
    expected = allowed if actor in {"care_team", "admin"} else READ_STATUS[actor]
    assert response.status_code == expected
    changed = AlertEvent.objects.count() > events
    assert changed is (expected == allowed)


def test_api1_a_note_on_another_teams_patient_is_refused(client, world, request):
    client.force_login(request.getfixturevalue("other_clinician"))
    response = client.post(f"/patients/{world['patient']}/notes/", {"text": "hi"})
    assert response.status_code == 404
    assert not PatientNote.objects.exists()


def test_api1_another_patients_device_cannot_write_for_this_patient(
    client, world, other_device, patient
):
    before = Observation.objects.filter(patient=patient).count()
    response = client.post(
        f"{API}/telemetry/batches",
        json.dumps({**batch(), "patient_id": patient.pk}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {other_device.token}",
    )
    assert response.status_code == 400
    assert Observation.objects.filter(patient=patient).count() == before


def test_api1_another_device_cannot_use_this_devices_session(
    api, client, device, other_device, pools
):
    session = open_session(api, device)
    response = client.post(
        f"{API}/telemetry/sealed-batches",
        json.dumps({**session_envelope(session), "counter": 1}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {other_device.token}",
    )
    assert response.status_code == 409
    assert response.json()["type"].endswith("session-unknown")


def session_envelope(session: dict) -> dict:
    return {"session_id": session["session_id"], "ciphertext": "A" * 40}


@pytest.fixture
def pools(device):
    kme.fill_pools(kme.default_link(), os.urandom(32 * 4))


@pytest.mark.parametrize("actor", ACTORS)
def test_api1_api2_only_the_named_device_fetches_its_session_key(
    api, client, device, pools, request, actor
):
    session = open_session(api, device)
    response = client.get(
        f"{API}/keys/{session['master_SAE_ID']}/dec_keys",
        {"key_ID": session["key_ID"]},
        **headers_of(actor, request),
    )
    # ETSI GS QKD 014: 401 with no body for anyone but the slave SAE named.
    assert (response.status_code, response.content) == (401, b"")


@pytest.mark.parametrize("actor", ACTORS)
def test_api1_no_actor_reads_the_server_pool_or_takes_its_keys(
    client, device, pools, request, actor
):
    """Only the ingest server is master of the device pools: any other caller, an
    authenticated SAE included, gets 401 with no body, and never a key."""
    slave = kme.device_sae(device.device).sae_id
    headers = headers_of(actor, request)
    status = client.get(f"{API}/keys/{slave}/status", **headers)
    taken = client.get(f"{API}/keys/{slave}/enc_keys", **headers)
    assert (status.status_code, taken.status_code) == (401, 401)
    assert (status.content, taken.content) == (b"", b"")


# --- API5: function level ---------------------------------------------------------

DEVICE_ENDPOINTS = ["/telemetry/batches", "/telemetry/sealed-batches"]
DEVICE_ENDPOINTS += ["/security/sessions"]


@pytest.mark.parametrize("actor", ["care_team", "other_team", "admin", "anonymous"])
@pytest.mark.parametrize("path", DEVICE_ENDPOINTS)
def test_api5_staff_and_strangers_cannot_call_device_endpoints(
    client, world, request, path, actor
):
    before = (Batch.objects.count(), DeviceSession.objects.count())
    response = client.post(
        API + path,
        json.dumps(batch()),
        content_type="application/json",
        **headers_of(actor, request),
    )
    assert response.status_code == 401
    assert (Batch.objects.count(), DeviceSession.objects.count()) == before


@pytest.mark.parametrize("actor", ["care_team", "other_team"])
def test_api5_clinicians_do_not_reach_the_admin_console(client, request, actor):
    client.force_login(request.getfixturevalue(STAFF[actor]))
    response = client.get("/admin/patients/patient/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# --- API2 broken authentication ---------------------------------------------------


def test_api2_an_expired_clinician_token_is_refused(client, world, clinician):
    token = issue_clinician_token(user=clinician)
    clinician.api_tokens.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(f"{API}/patients/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 401


def test_api2_a_deactivated_clinicians_token_is_refused(client, world, clinician):
    token = issue_clinician_token(user=clinician)
    clinician.is_active = False
    clinician.save()
    response = client.get(f"{API}/patients/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 401


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_api2_api4_password_guessing_is_locked_out(client, clinician):
    def attempt(password: str) -> int:
        return client.post(
            f"{API}/auth/token",
            {"username": "clinician", "password": password},
            content_type="application/json",
        ).status_code

    assert [attempt(f"guess-{i}") for i in range(3)] == [400, 400, 400]
    from tests.conftest import PASSWORD

    assert attempt(PASSWORD) == 429  # locked even with the right password


# --- API3 object property level ---------------------------------------------------


def test_api3_extra_fields_in_an_action_never_change_protected_fields(
    client, world, request, other_patient
):
    response = client.post(
        f"{API}/alerts/{world['alert']}/acknowledge/",
        json.dumps(
            {
                "note": "seen",
                "state": "resolved",
                "priority": "low",
                "patient_id": other_patient.pk,
                "escalation_tier": 2,
                "acknowledged_by": "admin",
            }
        ),
        content_type="application/json",
        **headers_of("care_team", request),
    )
    assert response.status_code == 200
    alert = Alert.objects.get(pk=world["alert"])
    assert (alert.state, alert.priority, alert.patient_id) == (
        "acknowledged",
        "medium",
        world["patient"],
    )
    assert (alert.escalation_tier, alert.acknowledged_by.username) == (0, "clinician")


def test_api3_extra_fields_in_a_session_request_are_ignored(api, device, pools):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {device.token}")
    response = api.post(
        f"{API}/security/sessions",
        {"max_batches": 10**9, "device": 999, "hybrid": True, "expires_at": "2099"},
        format="json",
    )
    assert response.status_code == 201
    session = DeviceSession.objects.get()
    assert (session.device_id, session.hybrid) == (device.device.pk, False)
    assert session.max_batches == response.json()["max_batches"] < 10**9


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_api3_patients_are_read_only_over_the_api(client, world, request, method):
    response = getattr(client, method)(
        f"{API}/patients/{world['patient']}/",
        json.dumps({"mrn": "HACKED", "status": "discharged"}),
        content_type="application/json",
        **headers_of("admin", request),
    )
    assert response.status_code == 405


def test_api3_a_patient_read_exposes_no_credential(client, world, request):
    response = client.get(
        f"{API}/patients/{world['patient']}/", **headers_of("care_team", request)
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "token" not in text
    assert "digest" not in text


# --- API4 unrestricted resource consumption ---------------------------------------


@override_settings(DEVICE_RATE="2/min")
def test_api4_a_device_over_its_rate_gets_429_with_retry_after(client, device):
    def upload() -> Any:
        return client.post(
            f"{API}/telemetry/batches",
            json.dumps(batch(ecg=[])),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {device.token}",
        )

    assert [upload().status_code for _ in range(2)] == [201, 201]
    refused = upload()
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=5000)
def test_api4_a_body_over_the_limit_gets_413_and_stores_nothing(client, device):
    response = client.post(
        f"{API}/telemetry/batches",
        json.dumps(batch(observations=[obs()] * 100)),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {device.token}",
    )
    assert response.status_code == 413
    assert not Batch.objects.exists()


def test_api4_a_page_of_observations_is_capped(client, world, request, device):
    t = now()
    Observation.objects.bulk_create(
        Observation(
            patient_id=world["patient"],
            device=device.device,
            batch=Batch.objects.get(),
            code="8867-4",
            value=70,
            unit="/min",
            time=t - timedelta(seconds=i),
        )
        for i in range(1_001)
    )
    response = client.get(
        f"{API}/patients/{world['patient']}/observations/",
        {"page_size": 1_000_000},
        **headers_of("care_team", request),
    )
    assert len(response.json()["results"]) == 1_000


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/fhir/Observation", {"patient": "{patient}", "_count": 100_000}),
        ("/alerts/", {"after_seq": "1e9"}),
        ("/patients/{patient}/observations/", {"since": "yesterday"}),
    ],
)
def test_api4_oversized_or_malformed_queries_are_refused(
    client, world, request, path, params
):
    query = {k: str(v).format(**world) for k, v in params.items()}
    response = client.get(
        API + path.format(**world), query, **headers_of("care_team", request)
    )
    assert response.status_code == 400


def test_api4_a_key_request_over_the_per_request_maximum_is_refused(
    client, device, master, pools
):
    # As the ingest server, the only SAE that may take keys (anyone else: 401).
    response = client.get(
        f"{API}/keys/{slave_id(device)}/enc_keys",
        {"number": 1000},
        HTTP_AUTHORIZATION=f"Bearer {master[1]}",
    )
    assert response.status_code == 400
    assert "max_key_per_request" in response.json()["message"]


# --- API6 sensitive business flows ------------------------------------------------


def test_api6_a_high_priority_alert_cannot_be_snoozed(client, patient, request):
    [alert] = alert_services.apply_outcomes(
        subject=Subject.of_patient(patient),
        outcomes=[Finding("asystole", "high", timezone.now(), "asystole", {})],
    )
    response = client.post(
        f"{API}/alerts/{alert.pk}/snooze/",
        json.dumps({"minutes": 10}),
        content_type="application/json",
        **headers_of("care_team", request),
    )
    assert response.status_code == 409
    assert Alert.objects.get(pk=alert.pk).snoozed_until is None


def test_api6_a_snooze_is_bounded(client, world, request):
    response = client.post(
        f"{API}/alerts/{world['alert']}/snooze/",
        json.dumps({"minutes": 10**6}),
        content_type="application/json",
        **headers_of("care_team", request),
    )
    assert response.status_code == 409
    assert Alert.objects.get(pk=world["alert"]).snoozed_until is None


# --- API7 server-side request forgery ---------------------------------------------


def test_api7_a_forged_host_is_refused_before_any_url_is_built(client, world, request):
    """No endpoint fetches a URL; the only URLs we build (FHIR fullUrl, links) come
    from the Host header, which must be one of ALLOWED_HOSTS."""
    response = client.get(
        f"{API}/fhir/Observation",
        {"patient": world["patient"]},
        HTTP_HOST="169.254.169.254",
        **headers_of("care_team", request),
    )
    assert response.status_code == 400


# --- API8 security misconfiguration -----------------------------------------------


def test_api8_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "TEST_REDIS_URL"}
    }
    env |= {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "rpm.hospital.example",
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "RPM_VAR_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_api8_answers_carry_the_security_headers(client, world, request):
    response = client.get(f"{API}/patients/", **headers_of("care_team", request))
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert "Access-Control-Allow-Origin" not in response
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_api8_pages_may_run_only_scripts_from_their_own_origin(client, clinician):
    """The Content-Security-Policy: an injected <script> or onclick= would not run."""
    client.force_login(clinician)
    response = client.get("/")
    assert response.status_code == 200
    policy = dict(
        part.split(" ", 1) for part in response["Content-Security-Policy"].split("; ")
    )
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'self'"
    assert policy["object-src"] == policy["base-uri"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-eval" not in response["Content-Security-Policy"]


@override_settings(DEBUG=False)
def test_api8_an_unknown_url_shows_no_debug_page(client):
    response = client.get(f"{API}/nowhere/")
    assert response.status_code == 404
    assert b"Traceback" not in response.content
    assert b"urlpatterns" not in response.content


# --- API9 improper inventory ------------------------------------------------------


def test_api9_every_api_route_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    documented = {_normalise(path) for path in schema["paths"]}
    routes = {
        _normalise("/" + route)
        for route in _routes(get_resolver().url_patterns)
        if route.startswith("api/v1/")
    }
    assert routes - documented == set()


def _routes(patterns: list, prefix: str = "") -> list[str]:
    out = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if hasattr(pattern, "url_patterns"):
            out += _routes(pattern.url_patterns, route)
        else:
            out.append(route)
    return out


def _normalise(path: str) -> str:
    import re

    path = re.sub(r"\(\?P<\w+>[^)]*\)", "{}", path)
    path = re.sub(r"<(?:\w+:)?(\w+)>", "{}", path)
    path = re.sub(r"\{[^}]+\}", "{}", path)
    return path.rstrip("$").replace("^", "")


# --- API10 unsafe consumption of APIs ---------------------------------------------


def test_api10_a_sealed_batch_is_validated_after_decryption(api, client, device, pools):
    """What a trusted channel delivers is still untrusted input: the batch inside
    a valid envelope goes through the same contract as a plain upload."""
    from tests.test_device_sessions import device_key, envelope

    session = open_session(api, device)
    key = device_key(api, device, session)
    sealed = envelope(key, device, session, 1, batch(observations=[obs(value=999)]))
    response = client.post(
        f"{API}/telemetry/sealed-batches",
        json.dumps(sealed),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {device.token}",
    )
    assert response.status_code == 400
    assert not Batch.objects.exists()


# --- WebSockets: API1, API2, API5 and API8 (origin) -------------------------------

WS_ALLOWED = {
    "/ws/alerts/": {"care_team", "other_team", "admin"},
    "/ws/patients/{patient}/": {"care_team", "admin"},
}


@database_sync_to_async
def _ws_headers(actor: str, request: pytest.FixtureRequest) -> list:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    auth = headers_of(actor, request).get("HTTP_AUTHORIZATION")
    return headers + ([(b"authorization", auth.encode())] if auth else [])


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("path", list(WS_ALLOWED))
async def test_api1_api5_only_staff_who_may_see_join_a_socket(
    world, request, path, actor
):
    from rpm.asgi import application

    headers = await _ws_headers(actor, request)
    socket = WebsocketCommunicator(application, path.format(**world), headers=headers)
    try:
        connected, _ = await socket.connect(timeout=10)
        assert connected
        first = await socket.receive_output(timeout=5)
        if actor in WS_ALLOWED[path]:
            assert json.loads(first["text"])["type"] == "hello"
        else:
            assert first == {"type": "websocket.close", "code": 4403}
    finally:
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_api8_a_socket_from_a_foreign_origin_is_refused(world, request):
    from rpm.asgi import application

    headers = [(b"origin", b"https://evil.example"), (b"host", b"localhost")]
    auth = await database_sync_to_async(headers_of)("care_team", request)
    headers.append((b"authorization", auth["HTTP_AUTHORIZATION"].encode()))
    socket = WebsocketCommunicator(application, "/ws/alerts/", headers=headers)
    connected, _ = await socket.connect(timeout=10)
    assert not connected
    await socket.disconnect()
