"""The admins' security page through Django's test client: who may see it, and
that it shows the QKD link's real runs, pools and eavesdropping events."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert
from security.models import QkdLink, QkdRun
from security.services import run_link

pytestmark = pytest.mark.django_db


def short_link() -> QkdLink:
    return QkdLink.objects.create(
        name="default",
        source_kme_id="kme-a",
        target_kme_id="kme-b",
        distance_km=10,
        pulses_per_run=4_000_000,
    )


def test_an_admin_sees_a_runs_qber_and_a_pool_count(client, admin, device):
    run = run_link(short_link(), seed=7)
    assert not run.aborted
    assert run.keys_added > 0
    client.force_login(admin)
    response = client.get(reverse("security"))
    assert response.status_code == 200
    page = response.content.decode()
    assert f"{run.qber * 100:.2f} %" in page
    pool = next(p for p in response.context["pools"] if p.slave_sae == "device-HUB-1")
    assert pool.stored == run.keys_added
    assert pool.capacity == settings.QKD_MAX_KEY_COUNT
    assert f'<td class="num">{run.keys_added}</td>' in page
    assert "Security</a>" in page  # the nav link


def test_the_page_says_no_runs_yet_when_there_are_none(client, admin):
    short_link()
    client.force_login(admin)
    response = client.get(reverse("security"))
    assert response.status_code == 200
    assert b"No runs yet." in response.content
    assert b"No eavesdropping events." in response.content


def test_a_compromised_link_and_its_eavesdropping_alert_are_shown(client, admin):
    since = timezone.now()
    link = short_link()
    QkdLink.objects.filter(pk=link.pk).update(
        status=QkdLink.Status.COMPROMISED, compromised_since=since
    )
    Alert.objects.create(
        subject_key="qkd:default",
        kind="qkd_eavesdropping",
        category="security",
        priority="high",
        title="Eavesdropping suspected",
        message="QBER 24.8 % over the 11 % threshold",
        latching=True,
        raised_at=since,
        condition_since=since,
        condition_last_at=since,
    )
    client.force_login(admin)
    page = client.get(reverse("security")).content.decode()
    assert "status-compromised" in page
    assert "Compromised since" in page
    assert "QBER 24.8 % over the 11 % threshold" in page


def test_the_data_endpoint_returns_the_run_series_and_the_curves(client, admin):
    link = short_link()
    for qber, rate, aborted in [(0.02, 1e-4, False), (0.2, 0.0, True)]:
        QkdRun.objects.create(
            link=link,
            qber=qber,
            key_rate_per_pulse=rate,
            final_key_bits=0 if aborted else 4096,
            aborted=aborted,
            report={"params": {"distance_km": 10.0}},
        )
    client.force_login(admin)
    response = client.get(reverse("security-data"))
    assert response.status_code == 200
    data = response.json()
    assert data["link"]["name"] == "default"
    assert data["qber_abort"] == pytest.approx(0.11)
    assert data["runs"]["qber"] == [0.02, 0.2]
    assert data["runs"]["aborted"] == [False, True]
    assert data["runs"]["distance_km"] == [10.0, 10.0]
    curve = data["distance"]
    assert len(curve["distance_km"]) == len(curve["theory"]) == len(curve["plob"])
    assert curve["theory"][0] > 0
    assert curve["plob"][0] > curve["theory"][0]
    # The link's own protocol certifies less than infinitely many decoys would.
    assert len(curve["vacuum_weak"]) == len(curve["theory"])
    assert 0.8 * curve["theory"][0] < curve["vacuum_weak"][0] < curve["theory"][0]


def test_a_clinician_gets_404_for_the_page_and_the_data(client, clinician):
    client.force_login(clinician)
    assert client.get(reverse("security")).status_code == 404
    assert client.get(reverse("security-data")).status_code == 404
    page = client.get(reverse("ward")).content.decode()
    assert reverse("security") not in page


def test_a_stranger_is_sent_to_sign_in(client):
    response = client.get(reverse("security"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert client.get(reverse("security-data")).status_code == 401
