"""A corpus of bad requests: each gets its exact 4xx and stores nothing.

Malformed JSON, wrong types, NaN and Infinity, huge numbers, implausible vitals,
timestamps in the future, oversized bodies, wrong content types, broken base64,
unicode tricks, replayed and tampered sealed batches, a batch_id reused for another
body, revoked and rotated tokens. Runs on the Django test client, so on SQLite and,
in ``make test``, on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, override_settings

from alerts.models import AlertEvent
from patients.models import ClinicianToken
from patients.services import discharge_patient, revoke_device, rotate_device_token
from security.models import DeviceSession
from telemetry.models import Batch, EcgAnalysis, EcgSegment, News2Score, Observation
from tests.test_device_sessions import device_key, envelope, open_session, pools
from tests.test_telemetry_ingest import batch, iso, now, obs

__all__ = ["pools"]  # the fixture, used by the sealed cases

BATCHES = "/api/v1/telemetry/batches"
SEALED = "/api/v1/telemetry/sealed-batches"
SESSIONS = "/api/v1/security/sessions"
TOKEN = "/api/v1/auth/token"
JSON = "application/json"
ECG = {"lead": "II", "fs_hz": 250, "unit": "uV", "samples": [12, 15, 9]}


@dataclass
class World:
    """What a case may need: the test client, a device's token, and its session."""

    client: Client
    api: Any
    device: Any
    token: str
    request: pytest.FixtureRequest
    counts: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> None:
        """Count the rows now: what the bad request must leave unchanged."""
        self.counts = row_counts()

    def post(
        self,
        body: bytes | str | dict,
        path: str = BATCHES,
        content_type: str = JSON,
        bearer: str | None = None,
        anonymous: bool = False,
    ) -> Any:
        data = json.dumps(body) if isinstance(body, dict) else body
        # CONTENT_TYPE set outright: the test client drops it for an empty body.
        meta = {"CONTENT_TYPE": content_type}
        if not anonymous:
            meta["HTTP_AUTHORIZATION"] = f"Bearer {bearer or self.token}"
        return self.client.post(path, data=data, content_type=content_type, **meta)

    def session(self) -> tuple[dict, bytes]:
        self.request.getfixturevalue("pools")
        opened = open_session(self.api, self.device)
        key = device_key(self.api, self.device, opened)
        self.snapshot()  # the session is set-up, not the bad request's doing
        return opened, key


@dataclass(frozen=True)
class Bad:
    name: str
    status: int
    send: Callable[[World], Any]
    kind: str | None = None  # the problem type, where the answer is problem JSON


def with_obs(**fields: Any) -> dict:
    return batch(observations=[{**obs(), **fields}], ecg=[])


def with_ecg(**fields: Any) -> dict:
    return batch(observations=[], ecg=[{**ECG, "start": iso(now()), **fields}])


def raw_value(literal: str) -> str:
    """A batch whose single heart rate has ``literal`` spliced in as raw JSON."""
    return json.dumps(with_obs(value=72)).replace('"value": 72', f'"value": {literal}')


def body(payload: dict | str | bytes, **kwargs: Any) -> Callable[[World], Any]:
    return lambda w: w.post(payload, **kwargs)


MALFORMED = [
    Bad("empty body", 400, body(b""), "invalid-batch"),
    Bad("truncated object", 400, body('{"batch_id": "x"'), "invalid-batch"),
    Bad("top-level array", 400, body("[]"), "invalid-batch"),
    Bad("top-level null", 400, body("null"), "invalid-batch"),
    Bad("top-level string", 400, body('"batch"'), "invalid-batch"),
    Bad("trailing comma", 400, body('{"observations": [],}'), "invalid-batch"),
    Bad("single quotes", 400, body("{'batch_id': 1}"), "invalid-batch"),
    Bad("a comment", 400, body('{"ecg": [] /* x */}'), "invalid-batch"),
    Bad("raw NUL byte", 400, body(b'{"batch_id": "\x00"}'), "invalid-batch"),
    Bad(
        "overlong UTF-8 slash", 400, body(b'{"batch_id": "\xc0\xaf"}'), "invalid-batch"
    ),
    Bad("latin-1 bytes", 400, body(b'{"batch_id": "caf\xe9"}'), "invalid-batch"),
]

WRONG_TYPES = [
    Bad("batch_id a number", 400, body(batch(batch_id=7)), "invalid-batch"),
    Bad("batch_id not a UUID", 400, body(batch(batch_id="abc")), "invalid-batch"),
    Bad("sent_at a number", 400, body(batch(sent_at=1700000000)), "invalid-batch"),
    Bad(
        "sent_at without a zone",
        400,
        body(batch(sent_at="2025-01-01T00:00:00")),
        "invalid-batch",
    ),
    Bad("observations an object", 400, body(batch(observations={})), "invalid-batch"),
    Bad("value a numeric string", 400, body(with_obs(value="72")), "invalid-batch"),
    Bad("value a boolean", 400, body(with_obs(value=True)), "invalid-batch"),
    Bad("value null", 400, body(with_obs(value=None)), "invalid-batch"),
    Bad("code a number", 400, body(with_obs(code=88674)), "invalid-batch"),
    Bad("battery a string", 400, body(batch(battery_pct="80")), "invalid-batch"),
    Bad("fs_hz a float", 400, body(with_ecg(fs_hz=250.0)), "invalid-batch"),
    Bad("samples strings", 400, body(with_ecg(samples=["1", "2"])), "invalid-batch"),
    Bad("uV samples floats", 400, body(with_ecg(samples=[1.5, 2.0])), "invalid-batch"),
    Bad(
        "extra top-level field (mass assignment)",
        400,
        body(batch(patient_id=1)),
        "invalid-batch",
    ),
    Bad(
        "extra observation field",
        400,
        body(with_obs(device_id=1)),
        "invalid-batch",
    ),
]

NON_FINITE_AND_HUGE = [
    Bad("NaN", 400, body(raw_value("NaN")), "invalid-batch"),
    Bad("Infinity", 400, body(raw_value("Infinity")), "invalid-batch"),
    Bad("-Infinity", 400, body(raw_value("-Infinity")), "invalid-batch"),
    Bad("1e400 overflows to infinity", 400, body(raw_value("1e400")), "invalid-batch"),
    Bad('"NaN" as a string', 400, body(raw_value('"NaN"')), "invalid-batch"),
    Bad("a 31-digit integer", 400, body(raw_value("1" + "0" * 30)), "invalid-batch"),
    Bad("battery 10**30", 400, body(batch(battery_pct=10**30)), "invalid-batch"),
    Bad("fs_hz 10**9", 400, body(with_ecg(fs_hz=10**9)), "invalid-batch"),
    Bad(
        "a sample of 10**12 uV", 400, body(with_ecg(samples=[10**12])), "invalid-batch"
    ),
    Bad(
        "a NaN ECG sample",
        400,
        body(json.dumps(with_ecg(samples=[1, 2])).replace("[1, 2]", "[1, NaN]")),
        "invalid-batch",
    ),
]

IMPLAUSIBLE = [
    Bad("heart rate 400", 400, body(with_obs(value=400)), "invalid-batch"),
    Bad("heart rate -5", 400, body(with_obs(value=-5)), "invalid-batch"),
    Bad(
        "SpO2 101 %",
        400,
        body(with_obs(code="2708-6", value=101, unit="%")),
        "invalid-batch",
    ),
    Bad(
        "temperature 50 Cel",
        400,
        body(with_obs(code="8310-5", value=50, unit="Cel")),
        "invalid-batch",
    ),
    Bad(
        "temperature 200 degF",
        400,
        body(with_obs(code="8310-5", value=200, unit="[degF]")),
        "invalid-batch",
    ),
    Bad(
        "diastolic above systolic",
        400,
        body(
            batch(
                observations=[
                    {**obs("8480-6", 110, "mm[Hg]"), "time": "2026-01-01T00:00:00Z"},
                    {**obs("8462-4", 120, "mm[Hg]"), "time": "2026-01-01T00:00:00Z"},
                ],
                ecg=[],
            )
        ),
        "invalid-batch",
    ),
    Bad(
        "consciousness X",
        400,
        body(with_obs(code="80288-4", value="X", unit="{ACVPU}")),
        "invalid-batch",
    ),
    Bad("unit bpm", 400, body(with_obs(unit="bpm")), "invalid-batch"),
    Bad("unknown code", 400, body(with_obs(code="1234-5")), "invalid-batch"),
    Bad("unknown lead", 400, body(with_ecg(lead="II'")), "invalid-batch"),
    Bad("ECG unit V", 400, body(with_ecg(unit="V")), "invalid-batch"),
    Bad("no ECG samples", 400, body(with_ecg(samples=[])), "invalid-batch"),
    Bad(
        "ECG over 60 s",
        400,
        body(with_ecg(fs_hz=100, samples=[0] * 6001)),
        "invalid-batch",
    ),
    Bad(
        "10,001 observations",
        400,
        body(batch(observations=[obs()] * 10_001)),
        "invalid-batch",
    ),
    Bad(
        "65 ECG segments",
        400,
        body(batch(ecg=[{**ECG, "start": iso(now())}] * 65)),
        "invalid-batch",
    ),
]


def _later(**delta: float) -> str:
    return iso(now() + timedelta(**delta))


TIMES = [
    Bad(
        "an observation an hour ahead",
        400,
        lambda w: w.post(with_obs(time=_later(hours=1))),
        "invalid-batch",
    ),
    Bad(
        "sent_at a day ahead",
        400,
        lambda w: w.post(batch(sent_at=_later(days=1))),
        "invalid-batch",
    ),
    Bad(
        "an ECG strip ahead",
        400,
        lambda w: w.post(with_ecg(start=_later(minutes=10))),
        "invalid-batch",
    ),
    Bad(
        "an observation 8 days old",
        400,
        lambda w: w.post(with_obs(time=_later(days=-8))),
        "invalid-batch",
    ),
    Bad("month 13", 400, body(with_obs(time="2025-13-01T00:00:00Z")), "invalid-batch"),
    Bad(
        "year 10000", 400, body(with_obs(time="10000-01-01T00:00:00Z")), "invalid-batch"
    ),
    # Found by `make fuzz` (a 500 from the database adapter): valid ISO 8601,
    # but before year 1 once converted to UTC.
    Bad(
        "sent_at before year 1 in UTC",
        400,
        body(batch(sent_at="0001-01-01T01:00:00+05:00", observations=[], ecg=[])),
        "invalid-batch",
    ),
    Bad(
        "an edge batch's sent_at before year 1 in UTC",
        400,
        body(
            {
                **batch(observations=[], ecg=[]),
                "policy": "forward-all",
                "sent_at": "0001-01-01T00:00:00.0+09:01",
            },
            path="/api/v1/telemetry/edge-batches",
        ),
        "invalid-batch",
    ),
]

UNICODE = [
    Bad(
        "full-width digits in a code",
        400,
        body(with_obs(code="８８６７-４")),
        "invalid-batch",
    ),
    Bad(
        "RTL override in a code",
        400,
        body(with_obs(code="\u202e4-7688")),
        "invalid-batch",
    ),
    Bad("NUL in a code", 400, body(with_obs(code="8867-4\u0000")), "invalid-batch"),
    Bad(
        "zero-width space in a unit",
        400,
        body(with_obs(unit="/min\u200b")),
        "invalid-batch",
    ),
    Bad(
        "lone surrogate in a code",
        400,
        body('{"observations": [{"code": "\\ud800"}]}'),
        "invalid-batch",
    ),
    Bad("full-width lead", 400, body(with_ecg(lead="ＩＩ")), "invalid-batch"),
    Bad(
        "full-width digits in batch_id",
        400,
        body(batch(batch_id="１" * 8 + "-1111-4111-8111-111111111111")),
        "invalid-batch",
    ),
]

MEDIA_AND_SIZE = [
    Bad(
        "text/plain",
        415,
        body(batch(), content_type="text/plain"),
        "unsupported-media-type",
    ),
    Bad(
        "no content type", 415, body(batch(), content_type=""), "unsupported-media-type"
    ),
    Bad(
        "a form",
        415,
        body("batch_id=1", content_type="application/x-www-form-urlencoded"),
        "unsupported-media-type",
    ),
    Bad(
        "JSON dressed as XML",
        415,
        body(batch(), content_type="application/xml"),
        "unsupported-media-type",
    ),
    Bad(
        "a look-alike media type",
        415,
        body(batch(), content_type="application/jsonx"),
        "unsupported-media-type",
    ),
    Bad("a body over the limit", 413, lambda w: _too_large(w), "too-large"),
    Bad(
        "GET on the upload",
        405,
        lambda w: w.client.get(BATCHES, HTTP_AUTHORIZATION=f"Bearer {w.token}"),
        "method-not-allowed",
    ),
]


def _too_large(w: World) -> Any:
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=4000):
        return w.post(batch(observations=[obs()] * 60))


def _revoked(w: World) -> Any:
    revoke_device(device=w.device.device)
    return w.post(batch())


def _rotated(w: World) -> Any:
    rotate_device_token(device=w.device.device)
    return w.post(batch())


def _discharged(w: World) -> Any:
    discharge_patient(patient=w.device.device.patient)
    return w.post(batch())


def _clinician_token_as_bearer(w: World) -> Any:
    from patients.services import issue_clinician_token

    token = issue_clinician_token(user=w.request.getfixturevalue("clinician"))
    w.snapshot()
    return w.post(batch(), bearer=token)


CREDENTIALS = [
    Bad("no token", 401, body(batch(), anonymous=True), "unauthenticated"),
    Bad("an unknown token", 401, body(batch(), bearer="x" * 43), "unauthenticated"),
    Bad("a revoked token", 401, _revoked, "unauthenticated"),
    Bad("a rotated-out token", 401, _rotated, "unauthenticated"),
    Bad(
        "a clinician's token as Bearer",
        401,
        _clinician_token_as_bearer,
        "unauthenticated",
    ),
    Bad(
        "the device token under another scheme",
        401,
        lambda w: w.client.post(
            BATCHES,
            json.dumps(batch()),
            content_type=JSON,
            HTTP_AUTHORIZATION=f"Token {w.token}",
        ),
        "unauthenticated",
    ),
    Bad("a device of a discharged patient", 403, _discharged, "forbidden"),
]


def _reused_batch_id(w: World) -> Any:
    first = batch()
    assert w.post(first).status_code == 201
    w.snapshot()
    return w.post({**first, "battery_pct": 12})


def _sealed(w: World, counter: int, payload: dict | None = None) -> dict:
    opened, key = w.session()
    return envelope(key, w.device, opened, counter, payload or batch())


def _replayed(w: World) -> Any:
    sealed = _sealed(w, 1)
    assert w.post(sealed, path=SEALED).status_code == 201
    w.snapshot()
    return w.post(sealed, path=SEALED)


def _stale_counter(w: World) -> Any:
    opened, key = w.session()
    assert (
        w.post(envelope(key, w.device, opened, 5, batch()), path=SEALED).status_code
        == 201
    )
    w.snapshot()
    return w.post(envelope(key, w.device, opened, 4, batch()), path=SEALED)


def _tampered(w: World) -> Any:
    sealed = _sealed(w, 1)
    data = bytearray(base64.b64decode(sealed["ciphertext"]))
    data[3] ^= 0x01
    return w.post(
        {**sealed, "ciphertext": base64.b64encode(data).decode()}, path=SEALED
    )


def _broken_base64(w: World) -> Any:
    sealed = _sealed(w, 1)
    return w.post(
        {**sealed, "ciphertext": "%%%" + sealed["ciphertext"][3:]}, path=SEALED
    )


def _moved_counter(w: World) -> Any:
    sealed = _sealed(w, 1)
    return w.post({**sealed, "counter": 2}, path=SEALED)


def _unknown_session(w: World) -> Any:
    sealed = _sealed(w, 1)
    return w.post(
        {**sealed, "session_id": "00000000-0000-4000-8000-000000000000"}, path=SEALED
    )


def _counter_zero(w: World) -> Any:
    return w.post({**_sealed(w, 1), "counter": 0}, path=SEALED)


def _counter_too_big(w: World) -> Any:
    return w.post({**_sealed(w, 1), "counter": 2**64}, path=SEALED)


def _invalid_batch_inside(w: World) -> Any:
    return w.post(_sealed(w, 1, with_obs(value=400)), path=SEALED)


REPLAYS = [
    Bad("a batch_id reused for another body", 409, _reused_batch_id, "batch-id-reused"),
    Bad("a replayed sealed batch", 409, _replayed, "replayed"),
    Bad("a stale sealed counter", 409, _stale_counter, "replayed"),
    Bad("a tampered sealed batch", 400, _tampered, "envelope-invalid"),
    Bad("sealed with broken base64", 400, _broken_base64, "envelope-invalid"),
    Bad(
        "a sealed batch moved to another counter",
        400,
        _moved_counter,
        "envelope-invalid",
    ),
    Bad(
        "a sealed batch for an unknown session",
        409,
        _unknown_session,
        "session-unknown",
    ),
    Bad("sealed counter 0", 400, _counter_zero, "invalid-envelope"),
    Bad("sealed counter 2**64", 400, _counter_too_big, "invalid-envelope"),
    Bad(
        "sealed ciphertext too short",
        400,
        body(
            {
                "session_id": "00000000-0000-4000-8000-000000000000",
                "counter": 1,
                "ciphertext": "AAAA",
            },
            path=SEALED,
        ),
        "invalid-envelope",
    ),
    Bad(
        "an invalid batch inside a valid envelope",
        400,
        _invalid_batch_inside,
        "invalid-batch",
    ),
]


def _with_pools(w: World) -> World:
    w.request.getfixturevalue("pools")
    return w


OTHER_ENDPOINTS = [
    Bad(
        "a session with broken base64",
        400,
        lambda w: w.post({"kem_public_key": "@@@"}, path=SESSIONS),
    ),
    Bad(
        "a session with a key of the wrong length",
        400,
        lambda w: _with_pools(w).post(
            {"kem_public_key": base64.b64encode(b"x" * 32).decode()}, path=SESSIONS
        ),
    ),
    Bad("a session body that is not JSON", 400, body("{", path=SESSIONS)),
    Bad(
        "a token request without a password",
        400,
        body({"username": "clinician"}, path=TOKEN, anonymous=True),
    ),
    Bad("a token request that is not JSON", 400, body("{", path=TOKEN, anonymous=True)),
]

CORPUS = [
    *MALFORMED,
    *WRONG_TYPES,
    *NON_FINITE_AND_HUGE,
    *IMPLAUSIBLE,
    *TIMES,
    *UNICODE,
    *MEDIA_AND_SIZE,
    *CREDENTIALS,
    *REPLAYS,
    *OTHER_ENDPOINTS,
]
COUNTED = (Batch, Observation, EcgSegment, EcgAnalysis, News2Score, DeviceSession)


def row_counts() -> dict[str, int]:
    counts = {model.__name__: model.objects.count() for model in COUNTED}
    counts["ClinicianToken"] = ClinicianToken.objects.count()
    return counts


def test_the_corpus_holds_at_least_sixty_distinct_bad_requests():
    names = [case.name for case in CORPUS]
    assert len(names) == len(set(names)) >= 60


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_a_bad_request_gets_its_exact_4xx_and_stores_nothing(
    case, client, api, device, clinician, request
):
    world = World(client, api, device, device.token, request)
    world.snapshot()
    response = case.send(world)
    assert response.status_code == case.status, response.content[:500]
    if case.kind is not None:
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["type"] == f"/api/problems/{case.kind}"
    assert row_counts() == world.counts
    assert not AlertEvent.objects.exclude(alert__kind="integrity_failure").exists()
