from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from patients.demo import seed_demo


class Command(BaseCommand):
    help = "Create (or refresh) the demo ward; rotates the demo devices' tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates published logins: it runs only with DEBUG on"
            )
        demo = seed_demo()
        if options["json"]:
            self.stdout.write(json.dumps(demo))
            return
        for clinician in demo["clinicians"]:
            self.stdout.write(
                f"{clinician['role']:>12}  {clinician['username']}"
                f" / {clinician['password']}"
                f"  ({len(clinician['patients'])} patients)"
            )
        self.stdout.write(
            f"{len(demo['patients'])} patients, {len(demo['devices'])} devices"
        )
