"""Stream a simulated ward through the device client: ``make demo`` runs it.

Tokens: with ``--tokens FILE`` (a JSON file like ``var/demo.json``) the simulator
needs no database and can drive any server; without it, it seeds or reuses the
demo ward in the local database, which rotates the demo devices' tokens, and
writes the new ones to ``var/demo.json``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from telemetry.device import DeviceClient, FlushReport, Refused
from telemetry.device.qkd import QkdSealer
from telemetry.device.transport import https_session
from telemetry.simulator.replay import ReplayStream, load_record
from telemetry.simulator.scenarios import SCENARIOS, Scenario, assign
from telemetry.simulator.ward import ECG_FS, Emission, SimulatedPatient

ROLES = ("HUB", "ECG")


@dataclass
class Bed:
    """One simulated patient and the clients of their two devices."""

    mrn: str
    patient: SimulatedPatient
    clients: dict[str, DeviceClient]
    online: bool = True


@dataclass
class Tally:
    delivered: int = 0
    duplicates: int = 0
    dead: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, report: FlushReport) -> None:
        with self.lock:
            self.delivered += report.delivered
            self.duplicates += report.duplicates
            self.dead += report.dead_lettered


def _device_clock(offset_s: float) -> Callable[[], datetime]:
    """A device's clock, off by offset_s (the clock-skew scenario's hub)."""
    return lambda: datetime.now(UTC) + timedelta(seconds=offset_s)


class Command(BaseCommand):
    help = "Simulate patients' hubs and ECG patches uploading to a server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, default=12)
        parser.add_argument("--interval", type=float, default=5.0, help="seconds")
        parser.add_argument(
            "--duration", type=float, default=600.0, help="seconds; 0 runs until Ctrl-C"
        )
        parser.add_argument(
            "--scenario", default="mixed", choices=["mixed", *SCENARIOS]
        )
        parser.add_argument(
            "--compression",
            type=float,
            default=30.0,
            help="physiological seconds per real second (a 4 h sepsis in 8 min)",
        )
        parser.add_argument("--url", default="https://127.0.0.1:8443")
        parser.add_argument("--ca", help="CA file (default: var/tls/cert.pem)")
        parser.add_argument("--pin", help="pin the server certificate's SHA-256")
        parser.add_argument("--tokens", help="device tokens JSON (var/demo.json)")
        parser.add_argument("--replay", help="WFDB record for the first ECG patch")
        parser.add_argument("--buffer-dir", help="default: var/sim")
        parser.add_argument("--wait", type=float, default=60.0, help="for the server")
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument(
            "--via-gateway",
            metavar="URL",
            help="attach each patient's devices to their edge gateway's device port "
            "(manage.py edge_gateway --listen): the first patient's at URL, the "
            "next at the following ports",
        )
        parser.add_argument(
            "--sealed",
            action="store_true",
            help="seal uploads with QKD session keys (hybrid with ML-KEM-768)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tokens = self._tokens(options["tokens"], options["patients"])
        scenarios = assign(len(tokens), options["scenario"])
        start = datetime.now(UTC)
        beds = [
            self._bed(mrn, devices, scenario, start, i, options)
            for i, ((mrn, devices), scenario) in enumerate(
                zip(tokens.items(), scenarios, strict=True)
            )
        ]
        self._describe(beds)
        self._wait_for_server(options)
        try:
            self._run(beds, start, options["interval"], options["duration"])
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")
        finally:
            for bed in beds:
                for client in bed.clients.values():
                    client.close()

    # --- set-up ---

    def _tokens(self, path: str | None, count: int) -> dict[str, dict[str, str]]:
        if path:
            devices = json.loads(Path(path).read_text())["devices"]
        else:
            devices = self._local_ward()
        by_patient: dict[str, dict[str, str]] = {}
        for device in devices:
            role = next((r for r in ROLES if f"-{r}-" in device["serial"]), None)
            if role:
                by_patient.setdefault(device["patient_mrn"], {})[role] = device["token"]
        ready = {m: d for m, d in sorted(by_patient.items()) if set(d) == set(ROLES)}
        if len(ready) < count:
            raise CommandError(
                f"{count} patients asked for, {len(ready)} with a hub and an ECG patch"
            )
        return dict(list(ready.items())[:count])

    def _local_ward(self) -> list[dict[str, str]]:
        from patients.demo import seed_demo

        demo = seed_demo()  # provisions what is missing, rotates the tokens
        demo_file = settings.VAR_DIR / "demo.json"
        demo_file.write_text(json.dumps(demo, indent=2))
        demo_file.chmod(0o600)
        self.stdout.write(f"Demo ward ready; new device tokens in {demo_file}")
        return demo["devices"]

    def _bed(
        self,
        mrn: str,
        tokens: dict[str, str],
        scenario: Scenario,
        start: datetime,
        index: int,
        options: dict[str, Any],
    ) -> Bed:
        replay = None
        if options["replay"] and index == 0:
            replay = ReplayStream(load_record(options["replay"], ECG_FS), ECG_FS)
        patient = SimulatedPatient(
            scenario, start, options["seed"] + index, options["compression"], replay
        )
        buffers = Path(options["buffer_dir"] or settings.VAR_DIR / "sim")
        clients = {
            role: DeviceClient(
                _upload_url(options, index),
                token,
                buffers / f"{mrn}-{role}.sqlite3",
                ca_file=self._ca(options),
                pin_sha256=options["pin"],
                timeout_s=10.0,
                clock=_device_clock(scenario.clock_offset_s if role == "HUB" else 0.0),
                sealer=_sealer(options, f"DEMO-{role}-{mrn[-3:]}"),
            )
            for role, token in tokens.items()
        }
        return Bed(mrn, patient, clients)

    def _ca(self, options: dict[str, Any]) -> str | None:
        if options["ca"]:
            return options["ca"]
        default = settings.VAR_DIR / "tls" / "cert.pem"
        return str(default) if default.exists() and not options["pin"] else None

    def _describe(self, beds: list[Bed]) -> None:
        for bed in beds:
            scenario = bed.patient.scenario
            expected = ", ".join(sorted(scenario.expected)) or "none"
            self.stdout.write(
                f"  {bed.mrn}  {scenario.name:<12} expect: {expected}"
                + ("  (ECG replayed)" if bed.patient.replayed else "")
            )

    def _wait_for_server(self, options: dict[str, Any]) -> None:
        session = https_session(self._ca(options), options["pin"])
        deadline = time.monotonic() + options["wait"]
        while time.monotonic() < deadline:
            try:
                session.get(options["url"] + "/login/", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.5)
        self.stdout.write("The server does not answer yet: buffering until it does.")

    # --- streaming ---

    def _run(
        self, beds: list[Bed], start: datetime, interval: float, duration: float
    ) -> None:
        tally = Tally()
        tick = 0
        with ThreadPoolExecutor(max_workers=4) as pool:
            while duration <= 0 or tick * interval < duration:
                tick += 1
                due = start + timedelta(seconds=tick * interval)
                time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
                for bed in beds:
                    self._hand_over(bed, bed.patient.tick(due))
                jobs = [
                    pool.submit(lambda c=client: tally.add(c.flush_once()))
                    for bed in beds
                    if bed.online
                    for client in bed.clients.values()
                ]
                for job in jobs:
                    job.result()
                self._progress(tick * interval, beds, tally)

    def _hand_over(self, bed: Bed, emissions: list[Emission]) -> None:
        for emission in emissions:
            client = bed.clients[emission.role]
            client.set_battery(emission.battery_pct)
            for r in emission.readings:
                self._keep(bed, client.add_observation, r.code, r.value, r.unit, r.time)
            for s in emission.strips:
                self._keep(bed, client.add_ecg, s.lead, s.fs_hz, s.start, s.samples_uv)
            # Offline: the device's uplink is down, so nothing is sent and the
            # client's buffer grows; it drains when the link is back.
            bed.online = emission.online

    def _keep(self, bed: Bed, add: Callable[..., None], *reading: Any) -> None:
        """As a device would: a reading the contract refuses is reported, the
        others go on."""
        try:
            add(*reading)
        except Refused as refused:
            self.stderr.write(f"{bed.mrn}: {refused}")

    def _progress(self, elapsed: float, beds: list[Bed], tally: Tally) -> None:
        pending = [c.pending() for b in beds for c in b.clients.values()]
        alerting = sum(bool(b.patient.scenario.expected) for b in beds)
        self.stdout.write(
            f"t={elapsed:5.0f}s  stored {tally.delivered}  resent {tally.duplicates}"
            f"  pending {sum(p.batches for p in pending)} batches"
            f" / {sum(p.observations for p in pending)} readings"
            f" / {sum(p.ecg_segments for p in pending)} strips"
            f"  dead {tally.dead}  offline {sum(not b.online for b in beds)}"
            f"  alerts expected for {alerting}/{len(beds)} patients"
        )


def _upload_url(options: dict[str, Any], index: int) -> str:
    if not options["via_gateway"]:
        return options["url"]
    parts = urlsplit(options["via_gateway"])
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port + index}"))


def _sealer(options: dict[str, Any], serial: str) -> QkdSealer | None:
    return QkdSealer(device_serial=serial) if options["sealed"] else None
