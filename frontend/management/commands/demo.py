from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from patients.demo import seed_demo
from security.tls import daphne_tls_endpoint, ensure_self_signed


class Command(BaseCommand):
    help = "Seed the demo ward and serve it over HTTPS with Daphne (make demo)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8443)
        parser.add_argument(
            "--no-simulate",
            dest="simulate",
            action="store_false",
            help="do not stream the simulated ward (simulate_devices)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("the demo runs only on the embedded default (DEBUG on)")
        demo = seed_demo()
        demo_file = settings.VAR_DIR / "demo.json"
        demo_file.write_text(json.dumps(demo, indent=2))
        demo_file.chmod(0o600)
        cert, key = self._certificate()
        port = options["port"]
        self._announce(demo, port, cert, demo_file)
        daphne = (
            shutil.which("daphne", path=str(Path(sys.executable).parent)) or "daphne"
        )
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        commands = [
            [
                daphne,
                "-e",
                daphne_tls_endpoint(port, cert, key),
                "rpm.asgi:application",
            ],
            [*manage, "run_periodic"],
        ]
        if options["simulate"]:
            commands.append(self._simulator(manage, port, cert, demo_file))
        run_together(commands)
        self.stdout.write("Stopped.")

    def _simulator(
        self, manage: list[str], port: int, cert: Path, demo_file: Path
    ) -> list[str]:
        """The simulated ward, on the tokens just written (no second rotation); it
        waits for Daphne to answer, and buffers if it does not."""
        return [
            *manage,
            "simulate_devices",
            "--tokens",
            str(demo_file),
            "--url",
            f"https://127.0.0.1:{port}",
            "--ca",
            str(cert),
            "--duration",
            "0",
        ]

    def _certificate(self) -> tuple[Path, Path]:
        cert = os.environ.get("TLS_CERT_FILE")
        key = os.environ.get("TLS_KEY_FILE")
        if cert and key:
            return Path(cert), Path(key)
        cert_path = settings.VAR_DIR / "tls" / "cert.pem"
        key_path = settings.VAR_DIR / "tls" / "key.pem"
        if ensure_self_signed(cert_path, key_path):
            self.stdout.write(f"Made a self-signed certificate: {cert_path}")
        return cert_path, key_path

    def _announce(self, demo: dict, port: int, cert: Path, demo_file: Path) -> None:
        base = f"https://127.0.0.1:{port}"
        lines = [
            "",
            f"  Dashboard: {base}/",
            f"  Admin:     {base}/admin/",
            f"  API docs:  {base}/api/docs/",
            f"  (self-signed certificate {cert}:",
            "   your browser will ask you to accept it)",
            "",
            "  Demo logins:",
            *(
                f"    {c['username']:<12} {c['password']}   {c['role']}"
                for c in demo["clinicians"]
            ),
            "",
            f"  Device tokens for the {len(demo['devices'])} demo devices: {demo_file}",
            "  Ctrl-C stops the demo.",
            "",
        ]
        self.stdout.write("\n".join(lines))


STOP_WAIT_S = 20


def run_together(commands: list[list[str]]) -> None:
    """Start every command; when one ends, on Ctrl-C or on SIGTERM (a supervisor,
    ``kill``), stop them all: none is left running without the others."""

    def terminated(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, terminated)
    # Started in the background of a shell (`make demo &`, nohup), SIGINT arrives
    # ignored, and children inherit an ignored signal: they would sleep through
    # the SIGINT that stops them. A handler is reset to the default in each child.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    children = [subprocess.Popen(c) for c in commands]  # noqa: S603 (our own commands)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:  # deaf to SIGINT: no orphans either way
                child.kill()
                child.wait()
