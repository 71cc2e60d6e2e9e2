from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q


class Organisation(models.Model):
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    CLINICIAN = "clinician", "Clinician"
    CHARGE_NURSE = "charge_nurse", "Charge nurse"
    ADMIN = "admin", "Admin"


class User(AbstractUser):
    """A member of staff: a clinician, a charge nurse or a hospital admin."""

    organisation = models.ForeignKey(
        Organisation,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="staff",
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.CLINICIAN)

    @property
    def is_org_admin(self) -> bool:
        return self.role == Role.ADMIN


class PatientQuerySet(models.QuerySet):
    def visible_to(self, user: User) -> PatientQuerySet:
        """Patients a member of staff may see: their care teams' (all of the
        organisation's for an admin)."""
        if user.is_org_admin:
            return self.filter(organisation_id=user.organisation_id)
        return self.filter(care_teams__members=user).distinct()


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Unknown"

    class Status(models.TextChoices):
        ENROLLED = "enrolled", "Enrolled"
        PAUSED = "paused", "Paused"
        DISCHARGED = "discharged", "Discharged"

    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="patients"
    )
    mrn = models.CharField("MRN", max_length=64)
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    spo2_scale = models.PositiveSmallIntegerField(
        "NEWS2 SpO2 scale",
        choices=[(1, "Scale 1"), (2, "Scale 2 (prescribed 88–92 % target)")],
        default=1,
    )
    spo2_scale_set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The clinician who prescribed the SpO2 target (needed for scale 2).",
    )
    threshold_overrides = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per-patient alert limits: {"8867-4": {"low": 45, "high": 120}}.',
    )
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.ENROLLED
    )
    enrolled_at = models.DateTimeField(auto_now_add=True)
    discharged_at = models.DateTimeField(null=True, blank=True)

    objects = PatientQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "mrn"], name="patient_mrn_unique_in_org"
            ),
            models.CheckConstraint(
                condition=Q(spo2_scale__in=[1, 2]), name="patient_spo2_scale_1_or_2"
            ),
            models.CheckConstraint(
                condition=Q(spo2_scale=1) | Q(spo2_scale_set_by__isnull=False),
                name="patient_spo2_scale_2_prescribed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.family_name.upper()}, {self.given_name} ({self.mrn})"

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"


class CareTeam(models.Model):
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="care_teams"
    )
    name = models.CharField(max_length=100)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="care_teams", blank=True
    )
    patients = models.ManyToManyField(Patient, related_name="care_teams", blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "name"], name="careteam_name_unique_in_org"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Device(models.Model):
    class Kind(models.TextChoices):
        ECG_PATCH = "ecg_patch", "ECG patch"
        PULSE_OXIMETER = "pulse_oximeter", "Pulse oximeter"
        BP_CUFF = "bp_cuff", "Blood pressure cuff"
        THERMOMETER = "thermometer", "Thermometer"
        HUB = "hub", "Multi-parameter hub"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    serial = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    model = models.CharField(max_length=100, blank=True)
    firmware = models.CharField(max_length=50, blank=True)
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="devices"
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.ACTIVE
    )
    expected_interval_s = models.PositiveIntegerField(
        "expected reporting interval (s)", default=60
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)
    overdue_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="when the device is late if nothing more arrives",
    )
    stale = models.BooleanField(default=False, editable=False)
    battery_pct = models.PositiveSmallIntegerField(null=True, blank=True)
    # Served by the lookup of every authenticated upload; null once revoked.
    token_digest = models.CharField(
        max_length=64, unique=True, null=True, blank=True, editable=False
    )
    token_issued_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(battery_pct__isnull=True) | Q(battery_pct__lte=100),
                name="device_battery_pct_at_most_100",
            ),
            models.CheckConstraint(
                condition=Q(status="active") | Q(token_digest__isnull=True),
                name="device_revoked_has_no_token",
            ),
        ]
        indexes = [
            # The stale sweep: "devices not yet stale whose overdue time has passed".
            models.Index(fields=["overdue_at"], name="device_overdue",
                         condition=Q(stale=False)),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.serial}"

    @property
    def expected_interval(self) -> timedelta:
        return timedelta(seconds=self.expected_interval_s)


class DeviceAssignment(models.Model):
    """Which patient a device was on, and when: kept when a device moves."""

    device = models.ForeignKey(
        Device, on_delete=models.PROTECT, related_name="assignments"
    )
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="device_assignments"
    )
    assigned_at = models.DateTimeField()
    unassigned_at = models.DateTimeField(null=True, blank=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-assigned_at"]
        constraints = [
            # At most one open assignment per device.
            models.UniqueConstraint(
                fields=["device"],
                condition=Q(unassigned_at__isnull=True),
                name="device_one_open_assignment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.device} on {self.patient} from {self.assigned_at:%Y-%m-%d}"


class ClinicianToken(models.Model):
    """An API token for a program acting as a member of staff; stored as a hash."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    # Served by the lookup of every token-authenticated request.
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"API token of {self.user} until {self.expires_at:%Y-%m-%d %H:%M}"
