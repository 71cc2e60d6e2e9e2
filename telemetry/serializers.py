"""Serializers of the clinician read API and the FHIR search: query parameters in,
stored rows out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .contract import CODES
from .fhir import SEARCH_CODES, SearchCode
from .models import EcgSegment, Observation

ZONE_EXAMPLE = "2025-01-31T08:00:00Z or 2025-01-31T09:00:00%2B01:00"
FHIR_MAX_COUNT = 200
FHIR_DEFAULT_COUNT = 50
DATE_PREFIXES = ("ge", "gt", "le", "lt")


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with a zone; a naive time would be read in the server's zone, which
    is a guess no clinical query should rely on."""

    default_error_messages = {
        "naive": f"give an ISO 8601 time with a zone, such as {ZONE_EXAMPLE}.",
        "invalid": f"not an ISO 8601 time: use a form such as {ZONE_EXAMPLE}.",
    }

    def enforce_timezone(self, value: datetime) -> datetime:
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)


def _unknown_code_message() -> str:
    return "unknown LOINC code {input!r}: accepted are " + ", ".join(CODES) + "."


class TimeRangeQuerySerializer(serializers.Serializer):
    since = AwareDateTimeField(
        required=False, help_text="only readings at or after this time (with zone)"
    )
    until = AwareDateTimeField(
        required=False, help_text="only readings before this time (with zone)"
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since >= until:
            raise serializers.ValidationError({"until": "must be later than since."})
        return attrs


class ObservationQuerySerializer(TimeRangeQuerySerializer):
    code = serializers.ChoiceField(
        choices=[(code, c.name) for code, c in CODES.items()],
        required=False,
        help_text="LOINC code of the vital sign",
        error_messages={"invalid_choice": _unknown_code_message()},
    )


class EcgQuerySerializer(serializers.Serializer):
    since = AwareDateTimeField(
        required=False, help_text="only segments starting at or after this time"
    )


class ObservationSerializer(serializers.ModelSerializer):
    device_serial = serializers.CharField(source="device.serial", read_only=True)

    class Meta:
        model = Observation
        fields = ["id", "code", "value", "text", "unit", "time", "device_serial"]
        read_only_fields = fields


class EcgSegmentSummarySerializer(serializers.ModelSerializer):
    duration_s = serializers.FloatField(read_only=True)
    device_serial = serializers.CharField(source="device.serial", read_only=True)

    class Meta:
        model = EcgSegment
        fields = [
            "id",
            "lead",
            "fs_hz",
            "start",
            "duration_s",
            "sample_count",
            "device_serial",
        ]
        read_only_fields = fields


@extend_schema_field({"type": "array", "items": {"type": "integer"}})
class SamplesField(serializers.Field):
    def to_representation(self, value: np.ndarray) -> list[int]:
        return value.tolist()


class EcgSegmentSerializer(EcgSegmentSummarySerializer):
    unit = serializers.SerializerMethodField(help_text="always uV (microvolts)")
    samples = SamplesField(source="samples_uv", read_only=True)

    class Meta(EcgSegmentSummarySerializer.Meta):
        fields = [*EcgSegmentSummarySerializer.Meta.fields, "unit", "samples"]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "enum": ["uV"]})
    def get_unit(self, segment: EcgSegment) -> str:
        return "uV"


class FhirTokenListField(serializers.CharField):
    """A FHIR token search value: comma-separated codes, each optionally
    ``system|code``."""

    def to_internal_value(self, data: Any) -> list[SearchCode]:
        tokens = super().to_internal_value(data).split(",")
        found = [SEARCH_CODES.get(_bare_code(token)) for token in tokens]
        unknown = [t for t, code in zip(tokens, found, strict=True) if code is None]
        if unknown:
            raise serializers.ValidationError(
                f"unknown code {', '.join(unknown)}: search by "
                + ", ".join(SEARCH_CODES)
            )
        return [code for code in found if code is not None]


def _bare_code(token: str) -> str:
    return token.strip().rpartition("|")[2]


class FhirDatePrefixField(serializers.CharField):
    """``date=ge2025-01-31T08:00:00Z``: a comparison prefix and a time with zone."""

    def to_internal_value(self, data: Any) -> tuple[str, datetime]:
        text = super().to_internal_value(data)
        prefix, moment = text[:2], text[2:]
        if prefix not in DATE_PREFIXES:
            raise serializers.ValidationError(
                "start with ge, gt, le or lt, as in date=ge2025-01-31T08:00:00Z"
            )
        return prefix, AwareDateTimeField().run_validation(moment)


class FhirObservationSearchSerializer(serializers.Serializer):
    patient = serializers.RegexField(
        r"^(Patient/)?\d+$",
        help_text="the patient's id, or Patient/<id>",
        error_messages={"invalid": "give the patient as <id> or Patient/<id>."},
    )
    code = FhirTokenListField(
        required=False,
        help_text="LOINC code, 85354-9 for blood pressure, or an MDC ECG lead code; "
        "several separated by commas; system|code accepted",
    )
    date = serializers.ListField(
        child=FhirDatePrefixField(),
        required=False,
        max_length=2,
        help_text="ge, gt, le or lt and an ISO 8601 time with zone; repeatable",
    )
    _count = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=FHIR_MAX_COUNT,
        default=FHIR_DEFAULT_COUNT,
        help_text=f"entries per answer (default {FHIR_DEFAULT_COUNT})",
    )

    def validate_patient(self, value: str) -> int:
        return int(value.rpartition("/")[2])


class ProblemErrorSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="the field to fix, as in observations[0]")
    message = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, as the device API answers every refusal."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    errors = ProblemErrorSerializer(many=True, required=False)


class BatchAnswerSerializer(serializers.Serializer):
    batch_id = serializers.UUIDField()
    observations = serializers.IntegerField(help_text="observations stored")
    ecg_segments = serializers.IntegerField(help_text="ECG segments stored")
