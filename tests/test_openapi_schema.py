"""/api/schema/ and /api/docs/: an OpenAPI document that matches the API, served
without any CDN."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from jsonschema import Draft202012Validator

from telemetry.contract import BatchIn, EcgSegmentIn, ObservationIn

CLINICIAN_READS = [
    "/api/v1/patients/",
    "/api/v1/patients/{id}/",
    "/api/v1/patients/{patient_id}/observations/",
    "/api/v1/patients/{patient_id}/ecg/",
    "/api/v1/patients/{patient_id}/ecg/{segment_id}/",
    "/api/v1/fhir/Observation",
]
OPERATIONS = [
    ("/api/v1/auth/token", "post"),
    ("/api/v1/telemetry/batches", "post"),
    *((path, "get") for path in CLINICIAN_READS),
]


@pytest.fixture(scope="module")
def schema() -> dict:
    # Generated once for the module; it needs no database.
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_generates_and_validates_without_a_warning(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            str(tmp_path / "schema.yaml"),
        ],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_the_schema_documents_each_endpoint(schema, path, method):
    assert method in schema["paths"][path]


@pytest.mark.parametrize("path", CLINICIAN_READS)
def test_clinician_reads_take_a_clinician_token_or_a_session(schema, path):
    operation = schema["paths"][path]["get"]
    assert operation["security"] == [{"clinicianToken": []}, {"cookieAuth": []}]


@pytest.mark.parametrize(
    ("path", "codes"),
    [
        ("/api/v1/patients/{patient_id}/observations/", {"200", "400", "401", "404"}),
        ("/api/v1/patients/{patient_id}/ecg/", {"200", "400", "401", "404"}),
        ("/api/v1/patients/{patient_id}/ecg/{segment_id}/", {"200", "401", "404"}),
        ("/api/v1/patients/{id}/", {"200", "401", "404"}),
        ("/api/v1/fhir/Observation", {"200", "400", "401"}),
    ],
)
def test_clinician_reads_document_their_refusals(schema, path, codes):
    assert codes <= set(schema["paths"][path]["get"]["responses"])


def test_the_fhir_search_is_documented_as_fhir_json(schema):
    operation = schema["paths"]["/api/v1/fhir/Observation"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"application/fhir+json"}
    params = {p["name"]: p for p in operation["parameters"]}
    assert set(params) == {"patient", "code", "date", "_count"}
    assert params["patient"]["required"] is True


def test_the_observation_list_documents_its_filters_and_cursor(schema):
    operation = schema["paths"]["/api/v1/patients/{patient_id}/observations/"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert {"code", "since", "until", "cursor", "page_size"} <= set(params)
    assert "8867-4" in params["code"]["schema"]["enum"]
    assert params["since"]["schema"]["format"] == "date-time"


def test_the_upload_takes_the_batch_model_and_only_a_device_token(schema):
    operation = schema["paths"]["/api/v1/telemetry/batches"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/BatchIn"}
    assert operation["security"] == [{"deviceToken": []}]
    problem = operation["responses"]["400"]["content"]["application/problem+json"]
    assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}


@pytest.mark.parametrize("model", [BatchIn, ObservationIn, EcgSegmentIn])
def test_the_batch_models_appear_with_all_their_fields(schema, model):
    component = schema["components"]["schemas"][model.__name__]
    assert set(component["properties"]) == set(model.model_fields)
    required = {n for n, f in model.model_fields.items() if f.is_required()}
    assert set(component["required"]) == required


def test_every_component_is_valid_json_schema(schema):
    for component in schema["components"]["schemas"].values():
        Draft202012Validator.check_schema(component)


def test_every_reference_points_at_a_component(schema):
    text = str(schema)
    refs = set(re.findall(r"#/components/schemas/([\w.-]+)", text))
    assert refs
    assert refs <= set(schema["components"]["schemas"])


def assets(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


def test_the_docs_load_no_asset_from_another_host(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    urls = assets(html)
    assert any(url.endswith("swagger-ui-bundle.js") for url in urls)
    assert all(url.startswith("/") and not url.startswith("//") for url in urls)
    assert not re.search(r"https?://|cdn", html, flags=re.IGNORECASE)


def test_the_docs_assets_are_in_our_static_files(client):
    html = client.get("/api/docs/").content.decode()
    for url in assets(html):
        if url.startswith("/api/docs/?script"):
            continue  # the start-up script, served by the view: the next test
        relative = url.removeprefix("/" + settings.STATIC_URL.strip("/") + "/")
        assert relative != url, url
        found = finders.find(relative)
        assert found, relative
        assert Path(found).stat().st_size > 0


def test_the_docs_start_swagger_ui_with_no_inline_script(client):
    """script-src 'self' forbids inline script: the start-up script is a URL."""
    html = client.get("/api/docs/").content.decode()
    tags = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.DOTALL)
    assert tags
    assert all("src=" in attributes and not body.strip() for attributes, body in tags)
    start = next(url for url in assets(html) if url.startswith("/api/docs/?script"))
    response = client.get(start)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert b"/api/schema/" in response.content
