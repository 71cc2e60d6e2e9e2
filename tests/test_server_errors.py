"""No free database connection: every part of the site answers 503 with
Retry-After (the request did nothing and may be sent again), never a bare 500.
The pool itself cannot be drained here: the test holds the only connection, so
the pool's error is raised where the first query of the request would be."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError
from psycopg_pool import PoolTimeout

from patients.auth import ClinicianTokenAuthentication
from patients.services import issue_clinician_token


def pool_exhausted(*args, **kwargs):
    try:
        raise PoolTimeout("couldn't get a connection after 10.00 sec")
    except PoolTimeout as timeout:
        raise OperationalError(str(timeout)) from timeout


@pytest.fixture
def client(client):
    client.raise_request_exception = False  # answer as production does
    return client


def test_a_clinician_api_call_gets_a_problem_503_it_can_retry(
    client, clinician, monkeypatch
):
    token = issue_clinician_token(user=clinician)
    monkeypatch.setattr(ClinicianTokenAuthentication, "authenticate", pool_exhausted)
    response = client.get("/api/v1/alerts/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/busy")
    assert "send the same request again" in response.json()["detail"]


def test_a_page_gets_a_503_that_says_to_reload(client, clinician, monkeypatch):
    client.force_login(clinician)
    monkeypatch.setattr(SessionStore, "load", pool_exhausted)
    response = client.get("/")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert "Reload this page" in response.content.decode()


def test_other_database_errors_stay_server_errors(client, clinician, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    token = issue_clinician_token(user=clinician)
    monkeypatch.setattr(ClinicianTokenAuthentication, "authenticate", broken)
    response = client.get("/api/v1/alerts/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 500
    assert "Retry-After" not in response
