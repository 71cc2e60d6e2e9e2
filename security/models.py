from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Append-only record of access to patient data and of security events.

    Nothing in the application updates or deletes these rows; on PostgreSQL the
    application's role is denied UPDATE and DELETE (see docs/deploy.md).
    """

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        DENIED = "denied", "Denied"
        FAILURE = "failure", "Failure"

    at = models.DateTimeField(auto_now_add=True)
    # PROTECT: a row the log points at is kept (deactivate, do not delete), since
    # the log itself never changes.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    actor_device = models.ForeignKey(
        "patients.Device",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    action = models.CharField(max_length=64)
    patient = models.ForeignKey(
        "patients.Patient",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    outcome = models.CharField(
        max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS
    )
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [
            # "Who looked at this patient's record, newest first" (privacy officer).
            models.Index(fields=["patient", "-at"], name="audit_patient_at"),
            # "What did this user do" (investigation).
            models.Index(fields=["actor_user", "-at"], name="audit_actor_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.outcome}"


class Sae(models.Model):
    """A secure application entity of ETSI GS QKD 014: the ingest server, or a device.

    A device SAE authenticates with its device token; another SAE with a credential
    of its own (stored as a hash), or with a client certificate verified by the
    TLS-terminating proxy (see docs/security.md).
    """

    sae_id = models.CharField(max_length=64, unique=True)
    device = models.OneToOneField(
        "patients.Device",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="sae",
    )
    credential_digest = models.CharField(
        max_length=64, unique=True, null=True, blank=True
    )
    certificate_subject = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.sae_id


class QkdLink(models.Model):
    """The emulated link between our two key management entities (KMEs)."""

    class Status(models.TextChoices):
        UP = "up", "Up"
        COMPROMISED = "compromised", "Compromised: key release stopped"

    name = models.CharField(max_length=64, unique=True)
    source_kme_id = models.CharField(max_length=64)
    target_kme_id = models.CharField(max_length=64)
    distance_km = models.FloatField()
    pulses_per_run = models.PositiveBigIntegerField(default=20_000_000)
    eve_fraction = models.FloatField(default=0.0, help_text="emulated intercept-resend")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UP)
    compromised_since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.distance_km:g} km, {self.status})"


class QkdRun(models.Model):
    """One emulated session of the link and what it produced."""

    link = models.ForeignKey(QkdLink, on_delete=models.CASCADE, related_name="runs")
    at = models.DateTimeField(auto_now_add=True)
    qber = models.FloatField(null=True)
    key_rate_per_pulse = models.FloatField()
    final_key_bits = models.PositiveIntegerField()
    keys_added = models.PositiveIntegerField(default=0)
    aborted = models.BooleanField()
    abort_reason = models.CharField(max_length=300, blank=True)
    report = models.JSONField(help_text="the session report (no key material)")

    class Meta:
        indexes = [
            # The security page: "the link's recent runs".
            models.Index(fields=["link", "-at"], name="qkdrun_link_at"),
        ]

    def __str__(self) -> str:
        return f"run of {self.link_id} at {self.at:%H:%M:%S}"


class QkdKey(models.Model):
    """A 256-bit key of one SAE pair's pool, encrypted at rest. Reserved for the
    slave when the master takes it (enc_keys), deleted when the slave takes it."""

    key_id = models.UUIDField(unique=True)
    link = models.ForeignKey(QkdLink, on_delete=models.CASCADE, related_name="keys")
    master_sae = models.CharField(max_length=64)
    slave_sae = models.CharField(max_length=64)
    size_bits = models.PositiveSmallIntegerField()
    sealed_material = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_to_master_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # enc_keys and status: "undelivered keys of this pair, oldest first".
            models.Index(
                fields=["master_sae", "slave_sae", "delivered_to_master_at"],
                name="qkdkey_pair_pool",
            ),
        ]

    def __str__(self) -> str:
        return f"key {self.key_id} {self.master_sae}->{self.slave_sae}"


class DeviceSession(models.Model):
    """A device's QKD-keyed upload session: its derived key (encrypted at rest) and
    the last counter accepted, which only increases."""

    session_id = models.UUIDField(unique=True)
    device = models.ForeignKey(
        "patients.Device", on_delete=models.CASCADE, related_name="qkd_sessions"
    )
    key_id = models.UUIDField()
    hybrid = models.BooleanField(default=False)
    sealed_session_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    max_batches = models.PositiveIntegerField()
    batches = models.PositiveIntegerField(default=0)
    last_counter = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"session {self.session_id} of device {self.device_id}"
