"""The server-side half of the inactivity sign-out (frontend.middleware)."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from frontend.middleware import LAST_ACTIVITY

pytestmark = pytest.mark.django_db

IDLE = "frontend.middleware.IdleTimeoutMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"


def with_idle_timeout(seconds: int):
    middleware = list(settings.MIDDLEWARE)
    if IDLE not in middleware:
        middleware.insert(middleware.index(AUTH) + 1, IDLE)
    return override_settings(MIDDLEWARE=middleware, SESSION_IDLE_TIMEOUT_S=seconds)


def idle_for(client, seconds: float) -> None:
    session = client.session
    session[LAST_ACTIVITY] = time.time() - seconds
    session.save()


@with_idle_timeout(900)
def test_a_session_idle_past_the_limit_is_signed_out(client, clinician):
    client.force_login(clinician)
    idle_for(client, 901)
    response = client.get(reverse("ward"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@with_idle_timeout(900)
def test_a_session_used_within_the_limit_stays_signed_in(client, clinician):
    client.force_login(clinician)
    idle_for(client, 600)
    assert client.get(reverse("ward")).status_code == 200
    assert time.time() - client.session[LAST_ACTIVITY] < 5


@with_idle_timeout(900)
def test_background_refreshes_do_not_count_as_activity(client, clinician):
    client.force_login(clinician)
    idle_for(client, 600)
    client.get(reverse("ward-rows"), HTTP_X_RPM_BACKGROUND="1")
    assert time.time() - client.session[LAST_ACTIVITY] >= 600


@with_idle_timeout(900)
def test_the_keepalive_counts_as_activity(client, clinician):
    client.force_login(clinician)
    idle_for(client, 600)
    response = client.post(reverse("keepalive"), HTTP_X_RPM_BACKGROUND="1")
    assert response.status_code == 200
    assert time.time() - client.session[LAST_ACTIVITY] < 5


def test_the_page_is_told_the_idle_limit(client, clinician):
    client.force_login(clinician)
    with override_settings(SESSION_IDLE_TIMEOUT_S=600):
        content = client.get(reverse("ward")).content.decode()
    assert 'data-idle-timeout="600"' in content
