from __future__ import annotations

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from .models import AlertEvent


class AlertSerializer(serializers.Serializer):
    """The alert as the WebSocket shows it (services.snapshot), read-only."""

    id = serializers.IntegerField()
    kind = serializers.CharField()
    category = serializers.ChoiceField(
        choices=["physiological", "technical", "security"]
    )
    priority = serializers.ChoiceField(choices=["high", "medium", "low"])
    state = serializers.ChoiceField(choices=["active", "acknowledged", "resolved"])
    title = serializers.CharField()
    message = serializers.CharField()
    evidence = serializers.DictField()
    patient_id = serializers.IntegerField(allow_null=True)
    device_id = serializers.IntegerField(allow_null=True)
    subject = serializers.CharField()
    latching = serializers.BooleanField()
    raised_at = serializers.DateTimeField()
    condition_since = serializers.DateTimeField()
    condition_cleared_at = serializers.DateTimeField(allow_null=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.CharField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolution = serializers.CharField(allow_blank=True)
    snoozed_until = serializers.DateTimeField(allow_null=True)
    escalation_tier = serializers.IntegerField()
    escalated_to = serializers.CharField()
    seq = serializers.IntegerField()


class AlertEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", default=None)

    class Meta:
        model = AlertEvent
        fields = ["seq", "type", "at", "actor", "note"]
        read_only_fields = fields


class AcknowledgeSerializer(serializers.Serializer):
    note = serializers.CharField(
        max_length=2000, required=False, default="", allow_blank=True
    )


class ResolveSerializer(serializers.Serializer):
    resolution = serializers.CharField(max_length=200)


class SnoozeSerializer(serializers.Serializer):
    minutes = serializers.IntegerField(min_value=1)


class CommentSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=2000)


@extend_schema_serializer(many=False)  # the list answer is one object, not an array
class AlertListSerializer(serializers.Serializer):
    results = AlertSerializer(many=True)
    max_seq = serializers.IntegerField(
        help_text=(
            "the newest event number, read before the alerts: with more=false, "
            "the caller has caught up to it"
        )
    )
    more = serializers.BooleanField(
        help_text="more changes wait: ask again after the last"
    )
