"""The alert engine: findings become alerts, alerts move through their lifecycle.

Every transition is stored as an AlertEvent numbered from one counter row that the
transaction locks, so event numbers increase in commit order and a client that
has seen event N misses nothing by asking for everything after N. Events are
pushed to the clinicians' sockets only after the commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from patients.models import Device, Patient, User
from rpm import metrics
from security.audit import record_event

from . import stream
from .models import Alert, AlertEvent, Condition, Sequence, Snooze
from .rules import KINDS, PRIORITY_RANK, Clear, Finding, Outcome, of_an_ended_episode

TIER_NAMES = ("care team", "charge nurse", "admin")

log = logging.getLogger(__name__)


class AlertActionError(Exception):
    """A clinician's action that the alert's state does not allow."""


@dataclass(frozen=True)
class Subject:
    key: str
    organisation_id: int | None
    patient_id: int | None = None
    device_id: int | None = None

    @classmethod
    def of_qkd_link(cls, name: str) -> Subject:
        return cls(f"qkd:{name}", None)

    @classmethod
    def of_patient(cls, patient: Patient) -> Subject:
        return cls(f"patient:{patient.pk}", patient.organisation_id, patient.pk)

    @classmethod
    def of_device(cls, device: Device, patient: Patient) -> Subject:
        return cls(
            f"device:{device.pk}", patient.organisation_id, patient.pk, device.pk
        )


def hold_patient(patient_id: int) -> None:
    """Inside a transaction: make the caller the patient's only writer of scores
    and alerts until it commits (apply_outcomes takes it before locking alerts;
    process_batch before it scores). Without it, two of the patient's devices
    processed at once could lock the patient's open alerts in opposite orders
    and deadlock. (SQLite has one writer at a time anyway.)"""
    if connection.features.has_select_for_update:
        list(
            Patient.objects.select_for_update()
            .filter(pk=patient_id)
            .values_list("pk", flat=True)
        )


def apply_outcomes(
    *,
    subject: Subject,
    outcomes: list[Outcome],
    live: set[str] | None = None,
    patient_held: bool = False,
) -> list[Alert]:
    """Apply findings and clearances in data-time order; returns alerts touched.

    Most outcomes of a normal reading are clearances of kinds with nothing open
    and nothing pending; one read of the subject's live kinds lets those pass
    without a transaction each. A finding makes its kind live for what follows.
    ``patient_held``: the caller's transaction already holds the patient
    (hold_patient), as batch processing and the stale sweep do.
    """
    touched = []
    live = set(live_kinds(subject)[subject.key] if live is None else live)
    held = patient_held
    for outcome in sorted(outcomes, key=lambda o: o.at):
        was_live = outcome.kind in live
        if isinstance(outcome, Clear) and not was_live:
            continue  # nothing to clear: the same as clearing before it existed
        live.add(outcome.kind)
        if not held and subject.patient_id and connection.in_atomic_block:
            # Inside a caller's transaction the alert locks add up until it
            # commits: take the patient first, as every evaluator does.
            hold_patient(subject.patient_id)
            held = True
        # Inside a caller's transaction, no savepoint: an error aborts it all.
        with transaction.atomic(savepoint=False):
            alert = (
                _on_finding(subject, outcome, was_live)
                if isinstance(outcome, Finding)
                else _on_clear(subject, outcome)
            )
        if alert is not None:
            touched.append(alert)
    return touched


def live_kinds(*subjects: Subject) -> dict[str, set[str]]:
    """Per subject key, the kinds with an open alert or a pending condition (one
    query for all the subjects; ``live`` of apply_outcomes takes its sets)."""
    keys = [subject.key for subject in subjects]
    open_alerts = (
        Alert.objects.filter(subject_key__in=keys)
        .exclude(state=Alert.State.RESOLVED)
        .values_list("subject_key", "kind")
    )
    pending = Condition.objects.filter(subject_key__in=keys).values_list(
        "subject_key", "kind"
    )
    live: dict[str, set[str]] = {key: set() for key in keys}
    for key, kind in open_alerts.union(pending):
        live[key].add(kind)
    return live


def _open_alert(subject: Subject, kind: str) -> Alert | None:
    return (
        Alert.objects.select_for_update()
        .filter(subject_key=subject.key, kind=kind)
        .exclude(state=Alert.State.RESOLVED)
        .first()
    )


def _on_finding(subject: Subject, finding: Finding, was_live: bool) -> Alert | None:
    """``was_live``: the kind had an open alert or a pending condition when the
    subject's live kinds were read."""
    alert = _open_alert(subject, finding.kind)
    if alert is not None:
        return _repeat(alert, finding)
    if _belongs_to_an_ended_episode(subject, finding):
        return None
    if not was_live and not KINDS[finding.kind].delay:
        # Nothing to wait for and no condition pending: raise at once, without
        # a condition row created and deleted in the same breath.
        return _raise(subject, finding, since=finding.at)
    condition, _ = Condition.objects.get_or_create(
        subject_key=subject.key, kind=finding.kind, defaults={"since": finding.at}
    )
    if finding.at < condition.since:
        Condition.objects.filter(pk=condition.pk).update(since=finding.at)
        condition.since = finding.at
    if finding.at - condition.since < KINDS[finding.kind].delay:
        return None
    condition.delete()
    return _raise(subject, finding, since=condition.since)


def _belongs_to_an_ended_episode(subject: Subject, finding: Finding) -> bool:
    """Late data from the episode of the last resolved alert of its kind."""
    last = (
        Alert.objects.filter(
            subject_key=subject.key, kind=finding.kind, state=Alert.State.RESOLVED
        )
        .order_by("-resolved_at")
        .values_list("condition_last_at", "condition_cleared_at")
        .first()
    )
    return last is not None and of_an_ended_episode(finding.at, *last)


def _raise(subject: Subject, finding: Finding, since: datetime) -> Alert:
    kind = KINDS[finding.kind]
    now = timezone.now()
    snoozed_until = _snoozed_until(subject.key, kind.name, now)
    escalation = _first_escalation(finding.priority, now)
    if escalation and snoozed_until:
        escalation = max(escalation, snoozed_until)
    seq = next_seq()  # the alert is created with its "raised" event's number
    alert = Alert.objects.create(
        subject_key=subject.key,
        kind=kind.name,
        category=kind.category,
        priority=finding.priority,
        patient_id=subject.patient_id,
        device_id=subject.device_id,
        organisation_id=subject.organisation_id,
        title=kind.title,
        message=finding.message[:500],
        evidence=dict(finding.evidence),
        latching=_latches(kind.category, finding.priority),
        raised_at=now,
        condition_since=since,
        condition_last_at=finding.at,
        snoozed_until=snoozed_until,
        next_escalation_at=escalation,
        last_seq=seq,
    )
    _event(alert, "raised", seq=seq)
    transaction.on_commit(lambda: _announce(alert))  # only alerts that exist
    return alert


def _announce(alert: Alert) -> None:
    """Log and count a new alert, with ids only (the request ID comes from the
    context: the upload whose batch raised it)."""
    log.info(
        "alert %s raised: %s %s",
        alert.pk,
        alert.priority,
        alert.kind,
        extra={
            "alert_id": alert.pk,
            "kind": alert.kind,
            "priority": alert.priority,
            "patient_id": alert.patient_id,
            "device_id": alert.device_id,
        },
    )
    metrics.alert_raised(
        kind=alert.kind,
        category=alert.category,
        priority=alert.priority,
        data_time=alert.condition_last_at,
        at=alert.raised_at,
    )


def _repeat(alert: Alert, finding: Finding) -> Alert:
    if finding.at < alert.condition_last_at:
        return alert  # late data older than what the alert already knows
    worse = PRIORITY_RANK[finding.priority] > PRIORITY_RANK[alert.priority]
    alert.message, alert.evidence = finding.message[:500], dict(finding.evidence)
    alert.condition_last_at, alert.condition_cleared_at = finding.at, None
    alert.occurrences += 1  # the row is locked (_open_alert): no lost update
    if worse:
        _worsen(alert, finding.priority)
    alert.save()
    if worse:
        _event(alert, "worsened")
    return alert


def _worsen(alert: Alert, priority: str) -> None:
    """A worse condition is news again: active, unsnoozed, escalation restarted."""
    now = timezone.now()
    alert.priority = priority
    alert.latching = _latches(alert.category, priority)
    alert.state = Alert.State.ACTIVE
    alert.snoozed_until = (
        None if priority == Alert.Priority.HIGH else alert.snoozed_until
    )
    alert.next_escalation_at = _first_escalation(priority, now)
    alert.escalation_tier = 0


def _on_clear(subject: Subject, clear: Clear) -> Alert | None:
    # Only a clearance from after a condition began ends it: a stored-and-forwarded
    # reading from before would restart the persistence wait of a current one.
    Condition.objects.filter(
        subject_key=subject.key, kind=clear.kind, since__lte=clear.at
    ).delete()
    alert = _open_alert(subject, clear.kind)
    if (
        alert is None
        or clear.at < alert.condition_last_at
        or alert.condition_cleared_at
    ):
        return None
    if alert.latching and alert.state == Alert.State.ACTIVE:
        alert.condition_cleared_at = clear.at
        alert.save(update_fields=["condition_cleared_at"])
        _event(alert, "cleared", note="condition ended; latched until acknowledged")
        return alert
    alert.condition_cleared_at = clear.at
    return _resolve(alert, "condition cleared")


def _resolve(alert: Alert, how: str, by: User | None = None) -> Alert:
    alert.state = Alert.State.RESOLVED
    alert.resolved_at = timezone.now()
    alert.resolution = how[:200]
    alert.next_escalation_at = None
    alert.save()
    _event(alert, "resolved", actor=by, note=how)
    return alert


def _latches(category: str, priority: str) -> bool:
    return category == "physiological" and priority == Alert.Priority.HIGH


def _first_escalation(priority: str, now: datetime) -> datetime | None:
    delay = settings.ALERT_ESCALATION_DELAYS_S.get(priority)
    return now + timedelta(seconds=delay) if delay else None


def _snoozed_until(subject_key: str, kind: str, now: datetime) -> datetime | None:
    snooze = (
        Snooze.objects.filter(subject_key=subject_key, kind=kind, until__gt=now)
        .order_by("-until")
        .first()
    )
    return snooze.until if snooze else None


# --- events -------------------------------------------------------------------------


def next_seq() -> int:
    """The next event number, under a row lock held until the commit (so event
    numbers commit in order: a client catching up after N misses none)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Sequence._meta.db_table} SET value = value + 1 "  # noqa: S608
            "WHERE name = %s RETURNING value",
            ["alerts"],
        )
        row = cursor.fetchone()
    if row is not None:
        return row[0]
    # The row comes with a migration; this only for a flushed test database.
    counter, _ = Sequence.objects.select_for_update().get_or_create(name="alerts")
    counter.value += 1
    counter.save(update_fields=["value"])
    return counter.value


def newest_seq() -> int:
    """The newest committed event number (0 before any). Numbers commit in order,
    so every event up to it is readable: the stream's hello and pongs and the
    catch-up answer all tell it."""
    last = AlertEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    return last or 0


def _event(
    alert: Alert,
    kind: str,
    actor: User | None = None,
    note: str = "",
    *,
    seq: int | None = None,
) -> AlertEvent:
    """Record and stream an event; ``seq``: its number when the alert was
    already written with it as ``last_seq`` (a new alert)."""
    if seq is None:
        seq = next_seq()
        Alert.objects.filter(pk=alert.pk).update(last_seq=seq)
    alert.last_seq = seq
    event = AlertEvent.objects.create(
        seq=seq,
        alert=alert,
        type=kind,
        at=timezone.now(),
        actor=actor,
        note=note[:2000],
        snapshot=snapshot(alert),
    )
    payload = {
        "type": "alert",
        "event": kind,
        "seq": seq,
        "note": event.note,
        "actor": actor.username if actor else None,
        "alert": event.snapshot,
    }
    transaction.on_commit(lambda: _push(alert, payload))
    return event


def _push(alert: Alert, payload: dict[str, Any]) -> None:
    user_ids = stream.recipients(
        organisation_id=alert.organisation_id, patient_id=alert.patient_id
    )
    stream.send_to_staff(user_ids, payload)


def snapshot(alert: Alert) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": alert.pk,
        "kind": alert.kind,
        "category": alert.category,
        "priority": alert.priority,
        "state": alert.state,
        "title": alert.title,
        "message": alert.message,
        "evidence": alert.evidence,
        "patient_id": alert.patient_id,
        "device_id": alert.device_id,
        "subject": alert.subject_key,
        "latching": alert.latching,
        "raised_at": iso(alert.raised_at),
        "condition_since": iso(alert.condition_since),
        "condition_cleared_at": iso(alert.condition_cleared_at),
        "acknowledged_at": iso(alert.acknowledged_at),
        "acknowledged_by": alert.acknowledged_by.username
        if alert.acknowledged_by
        else None,
        "resolved_at": iso(alert.resolved_at),
        "resolution": alert.resolution,
        "snoozed_until": iso(alert.snoozed_until),
        "escalation_tier": alert.escalation_tier,
        "escalated_to": TIER_NAMES[alert.escalation_tier],
        "seq": alert.last_seq,
    }


# --- what clinicians do -------------------------------------------------------------


def _locked(alert_pk: int) -> Alert:
    return Alert.objects.select_for_update().get(pk=alert_pk)


@transaction.atomic
def acknowledge(
    *, alert_pk: int, by: User, note: str = "", request: Any = None
) -> Alert:
    """Acknowledge: escalation stops; a latched alert whose condition has ended
    resolves at once."""
    alert = _locked(alert_pk)
    if alert.state != Alert.State.ACTIVE:
        raise AlertActionError(f"the alert is {alert.state}, not active")
    alert.state = Alert.State.ACKNOWLEDGED
    alert.acknowledged_at, alert.acknowledged_by = timezone.now(), by
    alert.next_escalation_at = None
    alert.save()
    _event(alert, "acknowledged", actor=by, note=note)
    _audit("alert.acknowledged", alert, by, request)
    if alert.condition_cleared_at is not None:
        _resolve(alert, "acknowledged after the condition ended", by)
    return alert


@transaction.atomic
def resolve(*, alert_pk: int, by: User, how: str, request: Any = None) -> Alert:
    alert = _locked(alert_pk)
    if alert.state == Alert.State.RESOLVED:
        raise AlertActionError("the alert is already resolved")
    if not how.strip():
        raise AlertActionError("say how the alert was resolved")
    _resolve(alert, how.strip(), by)
    _audit("alert.resolved", alert, by, request)
    return alert


@transaction.atomic
def snooze(*, alert_pk: int, by: User, minutes: int, request: Any = None) -> Alert:
    """Silence this kind for this subject for a while: no re-announcement, no
    escalation. Never for high priority."""
    alert = _locked(alert_pk)
    if alert.priority == Alert.Priority.HIGH:
        raise AlertActionError("high-priority alerts cannot be snoozed")
    if alert.state == Alert.State.RESOLVED:
        raise AlertActionError("the alert is resolved")
    if not 1 <= minutes <= settings.ALERT_MAX_SNOOZE_MIN:
        raise AlertActionError(
            f"snooze for 1 to {settings.ALERT_MAX_SNOOZE_MIN} minutes"
        )
    until = timezone.now() + timedelta(minutes=minutes)
    Snooze.objects.create(
        subject_key=alert.subject_key, kind=alert.kind, until=until, by=by
    )
    alert.snoozed_until = until
    if alert.next_escalation_at is not None:
        alert.next_escalation_at = max(alert.next_escalation_at, until)
    alert.save()
    _event(alert, "snoozed", actor=by, note=f"{minutes} min")
    _audit("alert.snoozed", alert, by, request, {"minutes": minutes})
    return alert


@transaction.atomic
def comment(*, alert_pk: int, by: User, text: str, request: Any = None) -> AlertEvent:
    alert = _locked(alert_pk)
    if not text.strip():
        raise AlertActionError("a comment needs some text")
    event = _event(alert, "comment", actor=by, note=text.strip())
    _audit("alert.commented", alert, by, request)
    return event


def _audit(
    action: str,
    alert: Alert,
    by: User,
    request: Any,
    details: dict[str, Any] | None = None,
) -> None:
    record_event(
        action=action,
        user=by,
        patient=alert.patient,
        obj=alert,
        request=request,
        details={"kind": alert.kind, **(details or {})},
    )


# --- escalation ---------------------------------------------------------------------


def escalate_due_alerts(*, now: datetime | None = None) -> int:
    """Re-announce and escalate active alerts nobody acknowledged in time. Each
    step is claimed with a guarded update, so two schedulers never double it."""
    now = now or timezone.now()
    due = Alert.objects.filter(
        state=Alert.State.ACTIVE, next_escalation_at__lte=now
    ).values_list("pk", "escalation_tier", "next_escalation_at")
    return sum(_escalate(pk, tier, when, now) for pk, tier, when in due)


def _escalate(pk: int, tier: int, when: datetime, now: datetime) -> bool:
    top = len(TIER_NAMES) - 1
    with transaction.atomic():
        alert = Alert.objects.filter(pk=pk).first()
        if alert is None:
            return False
        new_tier = min(tier + 1, top)
        again = _first_escalation(alert.priority, now) if new_tier < top else None
        claimed = Alert.objects.filter(
            pk=pk,
            state=Alert.State.ACTIVE,
            escalation_tier=tier,
            next_escalation_at=when,
        ).update(escalation_tier=new_tier, next_escalation_at=again)
        if not claimed:
            return False
        alert.refresh_from_db()
        _event(
            alert,
            "escalated",
            note=f"not acknowledged: escalated to {TIER_NAMES[new_tier]}",
        )
    return True


# --- devices that stopped reporting ---------------------------------------------------


def device_reported(*, device: Device, at: datetime) -> None:
    """Called for every processed upload: an end to the device's stale alarm if it
    had one. (When it will next be overdue was set as the upload was stored.)"""
    was_stale = Device.objects.filter(pk=device.pk, stale=True).update(stale=False)
    if was_stale and device.patient_id:
        apply_outcomes(
            subject=Subject.of_device(device, device.patient),
            outcomes=[Clear("device_stale", at)],
        )


def detect_stale_devices(*, now: datetime | None = None) -> int:
    """Find overdue devices (an indexed query) and flip each with a guarded update:
    only the scheduler whose update wins raises the alarm. The flip and the alarm
    commit together: a worker killed between them must leave the device overdue,
    for the next run to find, not marked stale with no alarm ever raised."""
    now = now or timezone.now()
    overdue = Device.objects.filter(
        stale=False,
        overdue_at__lt=now,
        status=Device.Status.ACTIVE,
        patient__isnull=False,
    ).select_related("patient")
    return sum(_flag_stale(device, now) for device in overdue)


def _flag_stale(device: Device, now: datetime) -> bool:
    with transaction.atomic():
        # The patient first, then the device: the order processing takes them in.
        hold_patient(device.patient_id)
        flipped = Device.objects.filter(
            pk=device.pk, stale=False, overdue_at__lt=now
        ).update(stale=True)
        if not flipped:
            return False
        silent = now - (device.last_seen_at or device.created_at)
        finding = Finding(
            "device_stale",
            "medium",
            now,
            f"no data for {int(silent.total_seconds() // 60)} min "
            f"(expected every {device.expected_interval_s} s)",
            {
                "last_seen_at": device.last_seen_at.isoformat()
                if device.last_seen_at
                else None,
                "expected_interval_s": device.expected_interval_s,
                "rule": "expected interval plus grace",
                "threshold": device.expected_interval_s + settings.DEVICE_STALE_GRACE_S,
            },
        )
        apply_outcomes(
            subject=Subject.of_device(device, device.patient),
            outcomes=[finding],
            patient_held=True,
        )
    return True
