"""ETSI GS QKD 014 key delivery, and QKD-keyed sessions for devices.

SAEs authenticate with a bearer credential (a device its device token), or, behind
a proxy that verified a client certificate (QKD_TRUST_PROXY_CLIENT_CERT), with the
certificate subject the proxy passes on. See docs/security.md.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import authentication, exceptions
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from patients.auth import _credential, device_for_token
from patients.credentials import token_digest
from telemetry.api import DeviceView

from . import kme, services
from .models import Sae
from .serializers import (
    ErrorSerializer,
    KeyContainerSerializer,
    KeyIdsSerializer,
    KeyRequestSerializer,
    SessionRequestSerializer,
    SessionSerializer,
    StatusSerializer,
)


class SaeAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Sae, None] | None:
        sae = _from_client_certificate(request) or _from_bearer(request)
        return (sae, None) if sae is not None else None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="kme"'


def _from_client_certificate(request: Request) -> Sae | None:
    if not settings.QKD_TRUST_PROXY_CLIENT_CERT:
        return None
    if request.META.get("HTTP_X_SSL_CLIENT_VERIFY") != "SUCCESS":
        return None
    subject = request.META.get("HTTP_X_SSL_CLIENT_S_DN", "")
    return Sae.objects.filter(certificate_subject=subject).first() if subject else None


def _from_bearer(request: Request) -> Sae | None:
    raw = _credential(request.META.get("HTTP_AUTHORIZATION", ""), "Bearer")
    if raw is None:
        return None
    device = device_for_token(raw)
    if device is not None:
        return kme.device_sae(device)
    return Sae.objects.filter(credential_digest=token_digest(raw)).first()


class IsSae(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, Sae)


class IsMasterSae(IsSae):
    """Only the ingest server is master of the pools this KME keeps, so only it may
    ask for their status or take keys from them (anyone else: 401)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return (
            super().has_permission(request, view)
            and request.user.sae_id == settings.QKD_SERVER_SAE_ID
        )


ERRORS = {
    400: OpenApiResponse(ErrorSerializer),
    401: OpenApiResponse(description="no body"),
    503: OpenApiResponse(ErrorSerializer),
}


class KmeView(APIView):
    authentication_classes = [SaeAuthentication]
    permission_classes = [IsSae]

    def handle_exception(self, exc: Exception) -> HttpResponse:
        if isinstance(
            exc,
            exceptions.NotAuthenticated
            | exceptions.AuthenticationFailed
            | exceptions.PermissionDenied,
        ):
            # ETSI GS QKD 014: 401 with no body.
            return HttpResponse(
                status=401, headers={"WWW-Authenticate": 'Bearer realm="kme"'}
            )
        if isinstance(exc, kme.KmeError):
            return kme_error(exc)
        if isinstance(exc, exceptions.ParseError | exceptions.ValidationError):
            return JsonResponse(
                {
                    "message": "the request is not valid",
                    "details": [{"error": str(exc.detail)}],
                },
                status=400,
            )
        return super().handle_exception(exc)


def kme_error(error: kme.KmeError) -> HttpResponse:
    if error.status == 401:
        return HttpResponse(status=401)
    body: dict[str, Any] = {"message": error.message}
    if error.details:
        body["details"] = error.details
    return JsonResponse(body, status=error.status)


def _keys_response(keys: list[kme.DeliveredKey]) -> JsonResponse:
    return JsonResponse({"keys": [k.as_json() for k in keys]})


class StatusView(KmeView):
    permission_classes = [IsMasterSae]

    @extend_schema(
        responses={200: StatusSerializer, **ERRORS}, tags=["ETSI GS QKD 014"]
    )
    def get(self, request: Request, slave_sae_id: str) -> JsonResponse:
        """Status of the key pool between the caller (master SAE) and a slave SAE."""
        return JsonResponse(kme.status(master=request.user, slave_sae_id=slave_sae_id))


class EncKeysView(KmeView):
    permission_classes = [IsMasterSae]

    @extend_schema(
        parameters=[OpenApiParameter("number", int), OpenApiParameter("size", int)],
        responses={200: KeyContainerSerializer, **ERRORS},
        tags=["ETSI GS QKD 014"],
    )
    def get(self, request: Request, slave_sae_id: str) -> JsonResponse:
        """Keys for the caller (master SAE), reserved for the slave SAE."""
        number = _int_param(request, "number", 1)
        size = _int_param(request, "size", None)
        return self._deliver(request, slave_sae_id, {"number": number, "size": size})

    @extend_schema(
        request=KeyRequestSerializer,
        responses={200: KeyContainerSerializer, **ERRORS},
        tags=["ETSI GS QKD 014"],
    )
    def post(self, request: Request, slave_sae_id: str) -> JsonResponse:
        body = KeyRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._deliver(request, slave_sae_id, body.validated_data)

    def _deliver(self, request: Request, slave_sae_id: str, ask: dict) -> JsonResponse:
        try:
            # Keys leave the pool with their audit row or not at all.
            with transaction.atomic():
                keys = kme.enc_keys(
                    master=request.user,
                    slave_sae_id=slave_sae_id,
                    number=ask["number"],
                    size=ask.get("size"),
                    additional_slave_sae_ids=ask.get("additional_slave_SAE_IDs"),
                    extension_mandatory=ask.get("extension_mandatory"),
                )
                services.record_key_event(
                    "qkd.keys_delivered_to_master", request, keys, slave_sae_id
                )
        except kme.KmeError as error:
            if "exhausted" in error.message:
                services.pool_exhausted(kme.default_link(), slave_sae_id)
            raise
        return _keys_response(keys)


class DecKeysView(KmeView):
    @extend_schema(
        parameters=[OpenApiParameter("key_ID", str, required=True)],
        responses={200: KeyContainerSerializer, **ERRORS},
        tags=["ETSI GS QKD 014"],
    )
    def get(self, request: Request, master_sae_id: str) -> JsonResponse:
        """The keys the master SAE was given for the caller (slave SAE)."""
        key_id = request.query_params.get("key_ID")
        if not key_id:
            raise kme.KmeError(400, "key_ID is required")
        return self._deliver(request, master_sae_id, [key_id])

    @extend_schema(
        request=KeyIdsSerializer,
        responses={200: KeyContainerSerializer, **ERRORS},
        tags=["ETSI GS QKD 014"],
    )
    def post(self, request: Request, master_sae_id: str) -> JsonResponse:
        body = KeyIdsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._deliver(
            request,
            master_sae_id,
            [k["key_ID"] for k in body.validated_data["key_IDs"]],
        )

    def _deliver(
        self, request: Request, master_sae_id: str, key_ids: list[str]
    ) -> JsonResponse:
        with transaction.atomic():
            keys = kme.dec_keys(
                slave=request.user, master_sae_id=master_sae_id, key_ids=key_ids
            )
            services.record_key_event(
                "qkd.keys_delivered_to_slave", request, keys, master_sae_id
            )
        return _keys_response(keys)


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise kme.KmeError(400, f"{name} shall be an integer") from None


class SessionView(DeviceView):
    """``POST /api/v1/security/sessions``: a device asks for a QKD-keyed session."""

    parser_classes = [JSONParser]

    @extend_schema(
        request=SessionRequestSerializer,
        responses={
            201: SessionSerializer,
            400: OpenApiResponse(description="kem_public_key is not a valid key"),
            401: OpenApiResponse(description="unknown, revoked or rotated token"),
            403: OpenApiResponse(description="the device is not assigned"),
            429: OpenApiResponse(description="over the device's rate"),
            503: OpenApiResponse(description="no key available now"),
        },
        tags=["devices"],
    )
    def post(self, request: Request) -> JsonResponse:
        body = SessionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        kem_key = _b64(body.validated_data.get("kem_public_key"))
        try:
            opened = services.open_session(
                device=request.user, kem_public_key=kem_key, request=request
            )
        except services.SessionUnavailable as error:
            return JsonResponse(
                {"detail": str(error)},
                status=503,
                headers={"Retry-After": str(int(settings.QKD_RUN_INTERVAL_S))},
            )
        except ValueError as error:
            raise exceptions.ValidationError({"kem_public_key": str(error)}) from error
        return JsonResponse(services.session_answer(opened), status=201)


def _b64(value: str | None) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise exceptions.ValidationError(
            {"kem_public_key": "not valid base64"}
        ) from None
