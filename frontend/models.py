from __future__ import annotations

from django.conf import settings
from django.db import models


class PatientNote(models.Model):
    """A clinician's free-text note on a patient, shown on the patient page."""

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.PROTECT, related_name="notes"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    text = models.TextField(max_length=4000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # The patient page: "this patient's notes, newest first".
            models.Index(
                fields=["patient", "-created_at"], name="note_patient_created"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(text=""), name="note_text_not_empty"
            ),
        ]

    def __str__(self) -> str:
        return f"note on {self.patient_id} by {self.author_id} at {self.created_at}"
