"""The alert engine: persistence, one open alert per subject and kind, latching,
lifecycle, snooze, escalation and stale devices."""

from __future__ import annotations

from datetime import timedelta
from threading import Barrier, Thread

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts import services
from alerts.models import Alert, AlertEvent, Condition
from alerts.rules import Clear, Finding
from alerts.services import AlertActionError, Subject
from patients.models import Device, Role
from security.models import AuditEvent
from tests.conftest import make_staff


@pytest.fixture
def subject(patient) -> Subject:
    return Subject.of_patient(patient)


def finding(
    kind="news2", priority="high", at=None, message="NEWS2 8 (high)"
) -> Finding:
    return Finding(kind, priority, at or timezone.now(), message, {"total": 8})


def apply(subject, *outcomes):
    return services.apply_outcomes(subject=subject, outcomes=list(outcomes))


def test_a_finding_raises_an_alert_that_says_why(subject):
    [alert] = apply(subject, finding())
    assert (alert.kind, alert.priority, alert.state) == ("news2", "high", "active")
    assert alert.category == "physiological"
    assert alert.evidence == {"total": 8}
    assert alert.events.get().type == "raised"


def test_a_repeat_updates_the_open_alert_and_never_duplicates_it(subject):
    t = timezone.now()
    apply(
        subject, finding(at=t), finding(at=t + timedelta(seconds=5), message="NEWS2 9")
    )
    alert = Alert.objects.get()
    assert alert.occurrences == 2
    assert alert.message == "NEWS2 9"
    assert Alert.objects.count() == 1


def test_a_worse_repeat_raises_the_priority_and_reactivates(subject, clinician):
    t = timezone.now()
    [alert] = apply(subject, finding(priority="medium", at=t))
    services.acknowledge(alert_pk=alert.pk, by=clinician)
    apply(subject, finding(priority="high", at=t + timedelta(seconds=1)))
    alert.refresh_from_db()
    assert (alert.priority, alert.state, alert.latching) == ("high", "active", True)
    assert list(alert.events.values_list("type", flat=True)) == [
        "raised",
        "acknowledged",
        "worsened",
    ]


def test_a_condition_must_persist_for_its_delay(subject):
    t = timezone.now()
    assert apply(subject, finding("spo2_low", "medium", t)) == []
    assert (
        apply(subject, finding("spo2_low", "medium", t + timedelta(seconds=10))) == []
    )
    [alert] = apply(subject, finding("spo2_low", "medium", t + timedelta(seconds=15)))
    assert alert.condition_since == t


def test_a_clearance_within_the_delay_starts_the_wait_again(subject):
    t = timezone.now()
    apply(
        subject,
        finding("spo2_low", "medium", t),
        Clear("spo2_low", t + timedelta(seconds=5)),
    )
    assert (
        apply(subject, finding("spo2_low", "medium", t + timedelta(seconds=16))) == []
    )
    assert not Alert.objects.exists()


def test_late_data_from_before_a_condition_does_not_restart_its_wait(subject):
    # A device that stored and forwarded: its normal reading from a minute ago
    # arrives after the low SpO2 began; the low SpO2 must still alarm on time.
    t = timezone.now()
    apply(subject, finding("spo2_low", "medium", t))
    apply(subject, Clear("spo2_low", t - timedelta(seconds=60)))
    [alert] = apply(subject, finding("spo2_low", "medium", t + timedelta(seconds=15)))
    assert alert.condition_since == t


def test_a_high_physiological_alert_latches_until_acknowledged(subject, clinician):
    t = timezone.now()
    [alert] = apply(subject, finding(at=t))
    apply(subject, Clear("news2", t + timedelta(seconds=30)))
    alert.refresh_from_db()
    assert alert.state == "active"
    assert alert.condition_cleared_at is not None
    services.acknowledge(alert_pk=alert.pk, by=clinician)
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert alert.resolution == "acknowledged after the condition ended"


def test_other_alerts_resolve_themselves_when_the_condition_clears(subject):
    t = timezone.now()
    [alert] = apply(subject, finding("news2", "medium", t))
    apply(subject, Clear("news2", t + timedelta(seconds=1)))
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", "condition cleared")


def test_an_acknowledged_alert_resolves_when_its_condition_clears(subject, clinician):
    t = timezone.now()
    [alert] = apply(subject, finding(at=t))
    services.acknowledge(alert_pk=alert.pk, by=clinician)
    apply(subject, Clear("news2", t + timedelta(seconds=1)))
    alert.refresh_from_db()
    assert alert.state == "resolved"


def test_a_clearance_older_than_the_alert_data_is_ignored(subject):
    t = timezone.now()
    [alert] = apply(subject, finding("news2", "medium", t))
    apply(subject, Clear("news2", t - timedelta(seconds=30)))
    alert.refresh_from_db()
    assert alert.state == "active"


def test_after_resolution_a_new_condition_is_a_new_alert(subject):
    t = timezone.now()
    apply(
        subject,
        finding("news2", "medium", t),
        Clear("news2", t + timedelta(seconds=1)),
        finding("news2", "medium", t + timedelta(seconds=2)),
    )
    assert Alert.objects.count() == 2
    assert Alert.objects.exclude(state="resolved").count() == 1


def test_late_data_from_an_ended_episode_raises_nothing_new(subject):
    # A fever cleared at t+10; a reading from t+5 arrives afterwards (a device's
    # stored backlog, or a batch processed out of order): that episode is over.
    t = timezone.now()
    apply(subject, finding("news2", "medium", t))
    apply(subject, Clear("news2", t + timedelta(seconds=10)))
    assert apply(subject, finding("news2", "medium", t + timedelta(seconds=5))) == []
    assert apply(subject, finding("news2", "medium", t)) == []  # already known
    assert Alert.objects.count() == 1
    # Nor does it start the persistence wait of a condition to come.
    assert not Condition.objects.exists()
    # Data from after the clearance is a new episode.
    [again] = apply(subject, finding("news2", "medium", t + timedelta(seconds=11)))
    assert Alert.objects.count() == 2
    assert again.state == "active"


def test_a_reading_newer_than_a_manual_resolution_knew_raises_again(subject, clinician):
    # Resolved by hand while the condition went on: the next reading is news.
    t = timezone.now()
    [alert] = apply(subject, finding("news2", "medium", t))
    services.resolve(alert_pk=alert.pk, by=clinician, how="seen at the bedside")
    [again] = apply(subject, finding("news2", "medium", t + timedelta(seconds=5)))
    assert again.pk != alert.pk


def test_event_numbers_only_increase_and_each_alert_knows_its_last(subject, clinician):
    [alert] = apply(subject, finding("news2", "medium"))
    services.comment(alert_pk=alert.pk, by=clinician, text="called the patient")
    services.acknowledge(alert_pk=alert.pk, by=clinician)
    seqs = list(AlertEvent.objects.values_list("seq", flat=True))
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    alert.refresh_from_db()
    assert alert.last_seq == seqs[-1]


def test_acknowledging_twice_is_refused(subject, clinician):
    [alert] = apply(subject, finding())
    services.acknowledge(alert_pk=alert.pk, by=clinician)
    with pytest.raises(AlertActionError, match="acknowledged"):
        services.acknowledge(alert_pk=alert.pk, by=clinician)


def test_every_clinician_action_is_audited(subject, clinician):
    [alert] = apply(subject, finding("news2", "medium"))
    services.comment(alert_pk=alert.pk, by=clinician, text="seen")
    services.snooze(alert_pk=alert.pk, by=clinician, minutes=5)
    services.acknowledge(alert_pk=alert.pk, by=clinician)
    services.resolve(alert_pk=alert.pk, by=clinician, how="reviewed by phone")
    actions = set(
        AuditEvent.objects.filter(actor_user=clinician).values_list("action", flat=True)
    )
    assert actions == {
        "alert.commented",
        "alert.snoozed",
        "alert.acknowledged",
        "alert.resolved",
    }


def test_high_priority_alerts_cannot_be_snoozed(subject, clinician):
    [alert] = apply(subject, finding())
    with pytest.raises(AlertActionError, match="cannot be snoozed"):
        services.snooze(alert_pk=alert.pk, by=clinician, minutes=5)


def test_a_snooze_covers_the_kind_and_holds_escalation(subject, clinician):
    t = timezone.now()
    [alert] = apply(subject, finding("news2", "medium", t))
    services.snooze(alert_pk=alert.pk, by=clinician, minutes=30)
    apply(
        subject,
        Clear("news2", t + timedelta(seconds=1)),
        finding("news2", "medium", t + timedelta(seconds=2)),
    )
    again = Alert.objects.exclude(state="resolved").get()
    assert again.pk != alert.pk
    assert again.snoozed_until is not None
    assert services.escalate_due_alerts(now=timezone.now() + timedelta(minutes=20)) == 0


def test_an_unacknowledged_alert_escalates_tier_by_tier(subject, settings):
    settings.ALERT_ESCALATION_DELAYS_S = {"high": 60, "medium": 600}
    [alert] = apply(subject, finding())
    assert services.escalate_due_alerts(now=timezone.now() + timedelta(seconds=30)) == 0
    assert services.escalate_due_alerts(now=timezone.now() + timedelta(seconds=61)) == 1
    alert.refresh_from_db()
    assert alert.escalation_tier == 1
    assert services.escalate_due_alerts(now=timezone.now() + timedelta(minutes=3)) == 1
    alert.refresh_from_db()
    assert (alert.escalation_tier, alert.next_escalation_at) == (2, None)
    notes = list(alert.events.filter(type="escalated").values_list("note", flat=True))
    assert notes == [
        "not acknowledged: escalated to charge nurse",
        "not acknowledged: escalated to admin",
    ]


def test_acknowledging_cancels_pending_escalation(subject, clinician):
    [alert] = apply(subject, finding())
    services.acknowledge(alert_pk=alert.pk, by=clinician)
    assert services.escalate_due_alerts(now=timezone.now() + timedelta(hours=1)) == 0


def test_low_priority_alerts_do_not_escalate(subject):
    apply(subject, finding("battery_low", "low"))
    assert services.escalate_due_alerts(now=timezone.now() + timedelta(hours=1)) == 0


def make_overdue(device: Device) -> None:
    """As if its last upload was stored an hour ago."""
    Device.objects.filter(pk=device.pk).update(
        last_seen_at=timezone.now() - timedelta(hours=1),
        overdue_at=timezone.now() - timedelta(minutes=57),
    )


def test_a_silent_device_raises_one_stale_alert(device):
    make_overdue(device.device)
    assert services.detect_stale_devices() == 1
    assert services.detect_stale_devices() == 0
    alert = Alert.objects.get()
    assert (alert.kind, alert.category, alert.device_id) == (
        "device_stale",
        "technical",
        device.device.pk,
    )


def test_a_scheduler_killed_before_the_alarm_leaves_the_device_to_the_next(
    device, monkeypatch
):
    # The worker dies between marking the device stale and raising its alarm
    # (SIGKILL, or the database restarting): neither may stay.
    make_overdue(device.device)
    raise_alarm = services.apply_outcomes

    def killed(**kwargs):
        raise ConnectionError("worker killed")

    monkeypatch.setattr(services, "apply_outcomes", killed)
    with pytest.raises(ConnectionError):
        services.detect_stale_devices()
    assert not Device.objects.get(pk=device.device.pk).stale
    monkeypatch.setattr(services, "apply_outcomes", raise_alarm)
    assert services.detect_stale_devices() == 1
    assert Alert.objects.get().kind == "device_stale"


def test_a_device_that_reports_again_clears_its_stale_alert(device):
    make_overdue(device.device)
    services.detect_stale_devices()
    services.device_reported(device=device.device, at=timezone.now())
    assert Alert.objects.get().state == "resolved"
    assert not Device.objects.get(pk=device.device.pk).stale


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_racing_raise_the_stale_alert_once(device):
    make_overdue(device.device)
    barrier, results = Barrier(2), []

    def scheduler():
        barrier.wait()
        try:
            results.append(services.detect_stale_devices())
        finally:
            connection.close()

    threads = [Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1]
    assert Alert.objects.filter(kind="device_stale").count() == 1


def test_recipients_are_the_care_team_and_the_admins(
    patient, clinician, other_clinician, admin, organisation
):
    from alerts.stream import recipients

    charge = make_staff(organisation, "charge", Role.CHARGE_NURSE)
    clinician.care_teams.get().members.add(charge)
    got = set(recipients(organisation_id=organisation.pk, patient_id=patient.pk))
    assert got == {clinician.pk, charge.pk, admin.pk}
    assert set(recipients(organisation_id=organisation.pk, patient_id=None)) == {
        admin.pk
    }


@pytest.mark.postgres  # SQLite has no row locks: FOR UPDATE is never sent
def test_findings_inside_a_callers_transaction_take_the_patient_lock_first(subject):
    """A worker's batch and a gateway's upload each apply several outcomes inside
    one transaction: both lock the patient before any alert, so the two cannot
    lock the patient's alerts in opposite orders."""
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        apply(subject, finding("temperature_high"), finding("systolic_bp_high"))
    sql = [q["sql"] for q in queries.captured_queries]
    locks = [i for i, q in enumerate(sql) if "FOR UPDATE" in q]
    assert locks, sql
    assert "patients_patient" in sql[locks[0]]
    assert sum("patients_patient" in sql[i] for i in locks) == 1  # taken once
