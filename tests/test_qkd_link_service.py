"""Running the emulated link: keys into the pools, an eavesdropper stops release."""

from __future__ import annotations

import pytest

from alerts.models import Alert
from security import kme, services
from security.models import AuditEvent, QkdKey, QkdLink


@pytest.fixture
def link(device):
    link = kme.default_link()
    link.distance_km, link.pulses_per_run = 10.0, 4_000_000
    link.save()
    return link


def test_a_clean_run_fills_the_pools(link):
    run = services.run_link(link, seed=7)
    assert not run.aborted
    assert run.keys_added > 0
    assert QkdKey.objects.count() == run.keys_added
    assert "final_key" not in run.report
    assert run.qber < 0.05


def test_an_eavesdropper_on_every_pulse_compromises_the_link(link):
    link.eve_fraction = 1.0
    link.save()
    run = services.run_link(link, seed=7)
    assert run.aborted
    assert run.qber > 0.2
    assert run.keys_added == 0
    link.refresh_from_db()
    assert link.status == QkdLink.Status.COMPROMISED
    alert = Alert.objects.get(kind="qkd_eavesdropping")
    assert (alert.priority, alert.category) == ("high", "security")
    assert AuditEvent.objects.filter(action="qkd.link_compromised").exists()


def test_the_link_recovers_when_the_eavesdropper_leaves(link):
    link.eve_fraction = 1.0
    link.save()
    services.run_link(link, seed=7)
    link.eve_fraction = 0.0
    link.save()
    services.run_link(link, seed=8)
    link.refresh_from_db()
    assert link.status == QkdLink.Status.UP
    alert = Alert.objects.get(kind="qkd_eavesdropping")
    # A high-priority security alert does not latch (only physiological ones do).
    assert alert.state == "resolved"
