"""Tell drf-spectacular how our credentials travel, so the schema documents them."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ClinicianTokenScheme(OpenApiAuthenticationExtension):
    target_class = "patients.auth.ClinicianTokenAuthentication"
    name = "clinicianToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>` from POST /api/v1/auth/token",
        }


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "patients.auth.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "the device's token"}


class SaeScheme(OpenApiAuthenticationExtension):
    target_class = "security.api.SaeAuthentication"
    name = "saeCredential"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "the SAE's credential (a device uses its device token); or a client "
                "certificate verified by the TLS-terminating proxy"
            ),
        }
