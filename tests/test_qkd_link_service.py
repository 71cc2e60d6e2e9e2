"""Running the emulated link: keys into the pools, an eavesdropper stops release."""

from __future__ import annotations

import pytest

from alerts.models import Alert
from security import kme, services
from security.models import AuditEvent, QkdKey, QkdLink, QkdRun


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


def test_a_worker_killed_before_the_status_leaves_no_keys_behind(link, monkeypatch):
    # Killed after the pools were filled but before the run and the link's status
    # were written: none of it may stay, or keys would exist with no run behind them.
    def killed(*args, **kwargs):
        raise ConnectionError("worker killed")

    monkeypatch.setattr(services, "_update_link_status", killed)
    with pytest.raises(ConnectionError):
        services.run_link(link, seed=7)
    assert not QkdKey.objects.exists()
    assert not QkdRun.objects.exists()
