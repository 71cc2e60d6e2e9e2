from __future__ import annotations

from rest_framework import serializers

from .models import Device, Patient


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="seconds until the token expires")


class DeviceSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = [
            "id",
            "serial",
            "kind",
            "model",
            "status",
            "expected_interval_s",
            "last_seen_at",
            "battery_pct",
        ]
        read_only_fields = fields


class PatientSerializer(serializers.ModelSerializer):
    devices = DeviceSummarySerializer(many=True, read_only=True)

    class Meta:
        model = Patient
        fields = [
            "id",
            "mrn",
            "given_name",
            "family_name",
            "birth_date",
            "sex",
            "spo2_scale",
            "status",
            "threshold_overrides",
            "devices",
        ]
        read_only_fields = fields
