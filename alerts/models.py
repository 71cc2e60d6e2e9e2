from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Alert(models.Model):
    """One alarm condition of one subject (a patient, a device or the QKD link).

    At most one alert per subject and kind is open (active or acknowledged); a
    repeat of the condition updates it. ``last_seq`` is the sequence number of its
    latest event, which is how clients catch up after a dropped connection.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    class Priority(models.TextChoices):
        HIGH = "high", "High"
        MEDIUM = "medium", "Medium"
        LOW = "low", "Low"

    subject_key = models.CharField(
        max_length=64, help_text="patient:ID, device:ID or qkd:LINK"
    )
    kind = models.CharField(max_length=32)
    category = models.CharField(max_length=16)
    priority = models.CharField(max_length=8, choices=Priority.choices)
    state = models.CharField(max_length=12, choices=State.choices, default=State.ACTIVE)
    patient = models.ForeignKey(
        "patients.Patient",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="alerts",
    )
    device = models.ForeignKey(
        "patients.Device",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="alerts",
    )
    # None for infrastructure alerts (the QKD link), which every admin sees.
    organisation = models.ForeignKey(
        "patients.Organisation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="alerts",
    )
    title = models.CharField(max_length=100)
    message = models.CharField(max_length=500)
    evidence = models.JSONField(default=dict)
    latching = models.BooleanField()
    raised_at = models.DateTimeField()
    condition_since = models.DateTimeField(help_text="data time the condition began")
    condition_last_at = models.DateTimeField(help_text="data time it was last seen")
    condition_cleared_at = models.DateTimeField(null=True, blank=True)
    occurrences = models.PositiveIntegerField(default=1)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=200, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    escalation_tier = models.PositiveSmallIntegerField(default=0)
    next_escalation_at = models.DateTimeField(null=True, blank=True)
    last_seq = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subject_key", "kind"],
                condition=~Q(state="resolved"),
                name="alert_one_open_per_subject_kind",
            ),
        ]
        indexes = [
            # Catch-up after a reconnect: "alerts changed after seq N".
            models.Index(fields=["last_seq"], name="alert_last_seq"),
            # The escalation sweep: "open alerts whose escalation is due".
            models.Index(
                fields=["next_escalation_at"],
                name="alert_escalation_due",
                condition=Q(next_escalation_at__isnull=False),
            ),
            # The patient list and page: "open alerts of these patients".
            models.Index(fields=["patient", "state"], name="alert_patient_state"),
            # Late data: "the last resolved alert of this subject and kind".
            models.Index(
                fields=["subject_key", "kind", "-resolved_at"],
                name="alert_last_resolved",
                condition=Q(state="resolved"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.priority} {self.kind} on {self.subject_key} ({self.state})"


class AlertEvent(models.Model):
    """A transition of an alert, numbered by a sequence that only increases, in
    commit order (see services.next_seq)."""

    seq = models.BigIntegerField(unique=True)
    alert = models.ForeignKey(Alert, on_delete=models.PROTECT, related_name="events")
    type = models.CharField(max_length=16)
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    note = models.TextField(blank=True)
    snapshot = models.JSONField(help_text="the alert as it was after this event")

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type} of alert {self.alert_id}"


class Sequence(models.Model):
    """A counter row; locking it orders event numbers by commit."""

    name = models.CharField(max_length=32, unique=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class Condition(models.Model):
    """Since when a not-yet-alerting condition has held: the persistence delay."""

    subject_key = models.CharField(max_length=64)
    kind = models.CharField(max_length=32)
    since = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subject_key", "kind"], name="condition_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.subject_key} since {self.since}"


class Snooze(models.Model):
    """Silence one kind for one patient until a time (never for high priority)."""

    subject_key = models.CharField(max_length=64)
    kind = models.CharField(max_length=32)
    until = models.DateTimeField()
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(fields=["subject_key", "kind", "-until"], name="snooze_lookup")
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.subject_key} until {self.until}"
