"""ETSI GS QKD 014 and session payloads, for parsing and for the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers


class KeyRequestSerializer(serializers.Serializer):
    number = serializers.IntegerField(required=False, default=1)
    size = serializers.IntegerField(required=False, allow_null=True, default=None)
    additional_slave_SAE_IDs = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list
    )
    extension_mandatory = serializers.ListField(required=False, default=list)
    extension_optional = serializers.ListField(required=False, default=list)


class KeyIdSerializer(serializers.Serializer):
    key_ID = serializers.CharField(max_length=64)


class KeyIdsSerializer(serializers.Serializer):
    key_IDs = KeyIdSerializer(many=True)


class KeySerializer(serializers.Serializer):
    key_ID = serializers.CharField()
    key = serializers.CharField(help_text="base64")


class KeyContainerSerializer(serializers.Serializer):
    keys = KeySerializer(many=True)


class StatusSerializer(serializers.Serializer):
    source_KME_ID = serializers.CharField()
    target_KME_ID = serializers.CharField()
    master_SAE_ID = serializers.CharField()
    slave_SAE_ID = serializers.CharField()
    key_size = serializers.IntegerField()
    stored_key_count = serializers.IntegerField()
    max_key_count = serializers.IntegerField()
    max_key_per_request = serializers.IntegerField()
    max_key_size = serializers.IntegerField()
    min_key_size = serializers.IntegerField()
    max_SAE_ID_count = serializers.IntegerField()


class ErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    details = serializers.ListField(child=serializers.DictField(), required=False)


class SessionRequestSerializer(serializers.Serializer):
    kem_public_key = serializers.CharField(
        required=False,
        max_length=4096,
        help_text="base64 ML-KEM-768 encapsulation key, for a hybrid session",
    )


class SessionSerializer(serializers.Serializer):
    session_id = serializers.UUIDField()
    key_ID = serializers.UUIDField()
    master_SAE_ID = serializers.CharField()
    expires_at = serializers.DateTimeField()
    max_batches = serializers.IntegerField()
    hybrid = serializers.BooleanField()
    kem_ciphertext = serializers.CharField(required=False, help_text="base64")
