from __future__ import annotations

import zlib
from datetime import datetime
from typing import NamedTuple

import numpy as np
from django.db import models
from django.db.models import Q


class Batch(models.Model):
    """One upload from a device, stored exactly once whatever the retries."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for processing"
        PROCESSED = "processed", "Processed"

    device = models.ForeignKey(
        "patients.Device", on_delete=models.PROTECT, related_name="batches"
    )
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="batches"
    )
    batch_id = models.UUIDField()
    fingerprint = models.CharField(max_length=64)
    sent_at = models.DateTimeField(
        help_text="the device's clock when it sent the batch"
    )
    received_at = models.DateTimeField(
        help_text="the server's clock when it stored the batch"
    )
    battery_pct = models.PositiveSmallIntegerField(null=True, blank=True)
    observation_count = models.PositiveIntegerField()
    ecg_count = models.PositiveIntegerField()
    state = models.CharField(
        max_length=10, choices=State.choices, default=State.PENDING
    )
    queued_at = models.DateTimeField()
    queue_count = models.PositiveIntegerField(default=1)
    urgent = models.BooleanField(
        default=False,
        help_text="triaged at ingest: a reading worth an alarm; queued ahead of "
        "the backlog, and again so if the sweep re-queues it",
    )
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Idempotency: a batch ID names one batch per device, forever.
            models.UniqueConstraint(
                fields=["device", "batch_id"], name="batch_unique_per_device"
            ),
        ]
        indexes = [
            # The sweep: "pending batches queued more than a minute ago".
            models.Index(
                fields=["queued_at"],
                name="batch_pending_queued",
                condition=Q(state="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"batch {self.batch_id} from {self.device_id}"

    @property
    def clock_skew_s(self) -> float:
        return (self.sent_at - self.received_at).total_seconds()


class Observation(models.Model):
    """One vital-sign reading: a number in its stored unit, or an ACVPU letter."""

    # No index of its own: obs_patient_code_time leads with the patient and serves
    # every lookup by patient. A second one cost every stored reading another
    # B-tree insert (COPY about 10 % slower, measured) and months of disk.
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    device = models.ForeignKey(
        "patients.Device", on_delete=models.PROTECT, related_name="+"
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.PROTECT, related_name="observations"
    )
    code = models.CharField(max_length=16)
    value = models.FloatField(null=True, blank=True)
    text = models.CharField(max_length=8, blank=True)
    unit = models.CharField(max_length=16)
    time = models.DateTimeField(help_text="when the device measured it")

    class Meta:
        indexes = [
            # "Latest per code per patient" and "range per code per patient".
            models.Index(
                fields=["patient", "code", "-time"], name="obs_patient_code_time"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(value__isnull=False) | ~Q(text=""), name="obs_has_a_value"
            ),
        ]

    def __str__(self) -> str:
        shown = self.text if self.value is None else self.value
        return f"{self.code}={shown} {self.unit}"


class ReadingRow(NamedTuple):
    """A stored observation as the worker reads its batch back: a tuple, not a
    model instance (building 600 models was a quarter of a 600-reading batch's
    processing, measured)."""

    code: str
    value: float | None
    text: str
    unit: str
    time: datetime

    @classmethod
    def of_batch(cls, batch: Batch) -> list[ReadingRow]:
        """The batch's readings in time order."""
        rows = Observation.objects.filter(batch=batch).order_by("time")
        return [cls(*row) for row in rows.values_list(*cls._fields)]


class EcgSegment(models.Model):
    """A stretch of one ECG lead, stored as compressed little-endian integers in µV."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for analysis"
        ANALYSED = "analysed", "Analysed"
        TOO_SHORT = "too_short", "Too short to analyse (under 5 s)"

    # Served by ecg_patient_start, which leads with the patient (see Observation).
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    device = models.ForeignKey(
        "patients.Device", on_delete=models.PROTECT, related_name="+"
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.PROTECT, related_name="ecg_segments"
    )
    lead = models.CharField(max_length=4)
    fs_hz = models.PositiveSmallIntegerField()
    start = models.DateTimeField()
    sample_count = models.PositiveIntegerField()
    dtype = models.CharField(max_length=4, help_text="<i2 or <i4")
    data = models.BinaryField()
    state = models.CharField(
        max_length=10, choices=State.choices, default=State.PENDING
    )

    class Meta:
        indexes = [
            # "A patient's ECG since a time" (the strip and the segment list).
            models.Index(fields=["patient", "-start"], name="ecg_patient_start"),
        ]

    def __str__(self) -> str:
        return f"lead {self.lead} at {self.start:%H:%M:%S} ({self.duration_s:.1f} s)"

    @property
    def duration_s(self) -> float:
        return self.sample_count / self.fs_hz

    def samples_uv(self) -> np.ndarray:
        return np.frombuffer(zlib.decompress(bytes(self.data)), dtype=self.dtype)

    def samples_mv(self) -> np.ndarray:
        return self.samples_uv().astype(np.float64) / 1000.0


def pack_samples(samples_uv: np.ndarray) -> tuple[str, bytes]:
    """Smallest integer type that holds the samples, then zlib."""
    fits16 = samples_uv.size == 0 or int(np.abs(samples_uv).max()) <= 32767
    dtype = "<i2" if fits16 else "<i4"
    return dtype, zlib.compress(samples_uv.astype(dtype).tobytes(), level=6)


class EcgAnalysis(models.Model):
    """The features of one analysed ECG segment (at most one per segment)."""

    segment = models.OneToOneField(
        EcgSegment, on_delete=models.CASCADE, related_name="analysis"
    )
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="+"
    )
    start = models.DateTimeField()
    rhythm = models.CharField(max_length=16)
    usable = models.BooleanField()
    quality = models.FloatField()
    heart_rate_bpm = models.FloatField(null=True, blank=True)
    beat_count = models.PositiveIntegerField()
    features = models.JSONField(help_text="every EcgFeatures field, JSON-safe")
    analysed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # "The patient's latest ECG features" and their history.
            models.Index(
                fields=["patient", "-start"], name="ecganalysis_patient_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rhythm} at {self.start:%H:%M:%S}"


class News2Score(models.Model):
    """A patient's NEWS2 as of a moment, with the observations it was computed from."""

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="news2_scores"
    )
    as_of = models.DateTimeField()
    total = models.PositiveSmallIntegerField()
    risk = models.CharField(max_length=12)
    partial = models.BooleanField()
    subscores = models.JSONField()
    missing = models.JSONField()
    spo2_scale = models.PositiveSmallIntegerField()
    observations = models.ManyToManyField(Observation, related_name="+", blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Re-scoring the same moment updates the score instead of adding one.
            models.UniqueConstraint(
                fields=["patient", "as_of"], name="news2_one_per_moment"
            ),
        ]
        indexes = [
            # "Latest score per patient" and the score history.
            models.Index(fields=["patient", "-as_of"], name="news2_patient_as_of"),
        ]

    def __str__(self) -> str:
        return f"NEWS2 {self.total} ({self.risk}) at {self.as_of:%Y-%m-%d %H:%M}"


class VitalSummary(models.Model):
    """Vital signs of one patient and code over a minute or an hour: what remains
    of raw observations once retention drops them (telemetry/retention.py).

    ``count`` counts every reading; ``min``, ``max`` and ``mean`` only numeric ones
    (ACVPU letters have none).
    """

    class Period(models.TextChoices):
        MINUTE = "minute", "Minute"
        HOUR = "hour", "Hour"

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="+"
    )
    code = models.CharField(max_length=16)
    unit = models.CharField(max_length=16)
    period = models.CharField(max_length=6, choices=Period.choices)
    bucket_start = models.DateTimeField()
    count = models.PositiveIntegerField()
    numeric_count = models.PositiveIntegerField()
    min = models.FloatField(null=True, blank=True)
    max = models.FloatField(null=True, blank=True)
    mean = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            # One summary per bucket; retention merges into it, never adds another.
            # Also serves "a patient's trend of one code at one resolution".
            models.UniqueConstraint(
                fields=["patient", "code", "period", "bucket_start"],
                name="vitalsummary_one_per_bucket",
            ),
            models.CheckConstraint(
                condition=Q(numeric_count__lte=models.F("count")),
                name="vitalsummary_numeric_within_count",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.period} from {self.bucket_start:%Y-%m-%d %H:%M}"


class EdgeBatch(models.Model):
    """What a gateway worked out, uploaded with (or without) the raw readings it came
    from: one per edge upload, beside the Batch that holds the readings."""

    batch = models.OneToOneField(Batch, on_delete=models.CASCADE, related_name="edge")
    policy = models.CharField(max_length=12)
    scores = models.JSONField(
        default=list, help_text="the gateway's NEWS2 results, as sent (for audit)"
    )
    outcome_count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"edge batch {self.batch_id} ({self.policy})"


class EdgeEcgFeatures(models.Model):
    """ECG features a gateway computed from a window it may not have uploaded: an
    EcgAnalysis without a stored EcgSegment (EcgAnalysis stays one-to-one with its
    segment, so the server's own analyses remain what they were)."""

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="+"
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.CASCADE, related_name="edge_features"
    )
    lead = models.CharField(max_length=4)
    fs_hz = models.PositiveSmallIntegerField()
    start = models.DateTimeField()
    duration_s = models.FloatField()
    rhythm = models.CharField(max_length=16)
    usable = models.BooleanField()
    quality = models.FloatField()
    heart_rate_bpm = models.FloatField(null=True, blank=True)
    beat_count = models.PositiveIntegerField()
    features = models.JSONField(help_text="every EcgFeatures field, JSON-safe")

    class Meta:
        indexes = [
            # "The patient's ECG features since a time", from the edge.
            models.Index(fields=["patient", "-start"], name="edgefeat_patient_start"),
        ]

    def __str__(self) -> str:
        return f"edge {self.rhythm} at {self.start:%H:%M:%S}"


class EdgeOutcome(models.Model):
    """An alert outcome a gateway reported: which condition held (or not) when.

    The server's second opinion on data that came through a gateway looks these up,
    so that it never replays a finding the gateway already reported (see
    alerts/edge.py)."""

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="+"
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.CASCADE, related_name="edge_outcomes"
    )
    kind = models.CharField(max_length=32)
    at = models.DateTimeField()
    finding = models.BooleanField(help_text="False: a Clear")

    class Meta:
        indexes = [
            # "Did the gateway report this kind at these times for this patient?"
            models.Index(fields=["patient", "kind", "at"], name="edgeoutcome_lookup"),
        ]

    def __str__(self) -> str:
        word = "finding" if self.finding else "clear"
        return f"edge {word} {self.kind} at {self.at:%H:%M:%S}"


class EcgFetchRequest(models.Model):
    """A clinician's request for raw ECG a gateway kept. The gateway is behind NAT,
    so it polls for open requests and answers with an upload that names them."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for the gateway"
        FULFILLED = "fulfilled", "Uploaded"
        UNAVAILABLE = "unavailable", "The gateway no longer had it"

    request_id = models.UUIDField(unique=True)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="+"
    )
    requested_by = models.ForeignKey(
        "patients.User", on_delete=models.PROTECT, related_name="+"
    )
    start = models.DateTimeField()
    end = models.DateTimeField()
    state = models.CharField(
        max_length=12, choices=State.choices, default=State.PENDING
    )
    created_at = models.DateTimeField()
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    segment_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=models.F("start")), name="ecgfetch_end_after_start"
            ),
        ]
        indexes = [
            # The gateway's poll: "pending requests for my patient".
            models.Index(
                fields=["patient", "created_at"],
                name="ecgfetch_pending",
                condition=Q(state="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"ECG {self.start:%H:%M:%S}–{self.end:%H:%M:%S} ({self.state})"
