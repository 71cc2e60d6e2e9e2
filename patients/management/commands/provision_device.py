from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from patients.models import Device, Patient
from patients.services import provision_device


class Command(BaseCommand):
    help = "Provision a device for a patient and print its token (shown this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patient", required=True, metavar="MRN")
        parser.add_argument("--serial", required=True)
        parser.add_argument("--kind", required=True, choices=Device.Kind.values)
        parser.add_argument(
            "--organisation", help="needed when the MRN exists in several"
        )
        parser.add_argument(
            "--interval", type=int, default=60, help="expected seconds between uploads"
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        patient = self._patient(options["patient"], options["organisation"])
        try:
            provisioned = provision_device(
                serial=options["serial"],
                kind=options["kind"],
                patient=patient,
                expected_interval_s=options["interval"],
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        device = provisioned.device
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "device_id": device.pk,
                        "serial": device.serial,
                        "token": provisioned.token,
                    }
                )
            )
            return
        self.stdout.write(
            f"Device {device.serial} (id {device.pk}) provisioned for {patient}."
        )
        self.stdout.write(f"Token (shown once): {provisioned.token}")

    def _patient(self, mrn: str, organisation: str | None) -> Patient:
        patients = Patient.objects.filter(mrn=mrn)
        if organisation:
            patients = patients.filter(organisation__name=organisation)
        found = list(patients[:2])
        if not found:
            raise CommandError(f"no patient with MRN {mrn}")
        if len(found) > 1:
            raise CommandError(
                f"MRN {mrn} exists in several organisations: pass --organisation"
            )
        return found[0]
