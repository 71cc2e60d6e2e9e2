"""Property-based fuzzing of the whole HTTP API against its own OpenAPI schema.

Schemathesis generates requests from ``/api/schema/`` (valid and invalid ones) for
every operation, sends them through Django's WSGI handler with a device's or a
clinician's credentials, and checks every answer: no server error, a documented
status code and content type, and a body that matches the documented schema.
``FUZZ_EXAMPLES`` sets the examples per operation: a few hundred cases in all by
default (CI); ``make fuzz`` runs many more.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from patients.services import issue_clinician_token
from security import kme

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
# The suite's bounded run draws the same cases every time, so CI is repeatable
# and a failure reproduces; `make fuzz` (FUZZ_EXAMPLES set) explores new ones.
DERANDOMIZE = "FUZZ_EXAMPLES" not in os.environ
DEVICE_PATHS = ("/api/v1/telemetry/", "/api/v1/security/", "/api/v1/keys/")

# No server error, and every answer as documented: status, media type and body.
# (Whether a schema-valid request must be accepted is not checked: the schema
# does not carry the clinical plausibility and clock rules that refuse some.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_wsgi(
    "/api/schema/?format=json", get_wsgi_application()
)


@pytest.fixture
def credentials(device, clinician, settings) -> Iterator[dict[str, str]]:
    # The rate limit is tested elsewhere: here it would only hide the contract.
    settings.DEVICE_RATE = "1000000/min"
    # Keys for the sessions the examples open (an empty pool is a 503).
    settings.QKD_MAX_KEY_COUNT = 256
    kme.fill_pools(kme.default_link(), os.urandom(32 * 256))
    # As Django's test client does: the WSGI handler would otherwise close the
    # connection that holds the test's transaction after every request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield {
            "device": f"Bearer {device.token}",
            "clinician": f"Token {issue_clinician_token(user=clinician)}",
        }
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def authorization(path: str, credentials: dict[str, str]) -> dict[str, str]:
    if path == "/api/v1/auth/token":
        return {}
    who = "device" if path.startswith(DEVICE_PATHS) else "clinician"
    return {"Authorization": credentials[who]}


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_its_schema_says(case, credentials):
    case.call_and_validate(headers=authorization(case.path, credentials), checks=CHECKS)
