"""Fault injection: servers of our own to restart, a fleet of device clients whose
acknowledgements are recorded, and the Jepsen-style comparison with the database.

The machine's PostgreSQL and Redis are shared, so the fault suite never restarts
them: it runs a throwaway PostgreSQL cluster (initdb + pg_ctl, as the postgres user
when we are root, since PostgreSQL refuses to run as root) and a throwaway
redis-server without persistence, each on a free port. ``make soak`` and the
integration suite both drive this module.

Run as ``python -m tests.integration.faults provision N SILENT`` (with
DATABASE_URL set) it creates the ward the fleet uploads for and prints it as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests

from security.tls import daphne_tls_endpoint, ensure_self_signed
from telemetry.device import Backoff, DeviceClient
from telemetry.device.buffer import StoredBatch

from .stack import BIN, ROOT, Process, Stack, free_port, wait_until

PASSWORD = "fault-suite-password-1"  # a throwaway test cluster
NORMAL_INTERVAL_S = 900  # never stale during a run
SILENT_INTERVAL_S = 15
STALE_GRACE_S = 5
STALE_SLACK = timedelta(minutes=1)


# --- servers of our own ----------------------------------------------------------


def _postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not versions:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return versions[-1].parent


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class Postgres:
    """A throwaway cluster: trust authentication on 127.0.0.1 only, no socket file."""

    datadir: Path
    port: int

    @classmethod
    def create(cls) -> Postgres:
        datadir = Path(tempfile.mkdtemp(prefix="rpm-faults-pg-"))
        if os.geteuid() == 0:
            shutil.chown(datadir, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    str(_postgres_bin() / "initdb"),
                    "-D",
                    str(datadir / "data"),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        return cls(datadir, free_port())

    def _ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            "-c unix_socket_directories='' -c max_connections=200 -c fsync=on"
        )
        subprocess.run(
            _as_postgres(
                [
                    str(_postgres_bin() / "pg_ctl"),
                    "-D",
                    str(self.datadir / "data"),
                    "-l",
                    str(self.datadir / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    *args,
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def restart(self, down_for: float = 2.0) -> None:
        """Fast shutdown (every connection is cut), a pause, and up again."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def destroy(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)


REDIS_READY = "Ready to accept"


def redis_process(workdir: Path) -> tuple[Process, int]:
    port = free_port()
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    return Process("redis", command, dict(os.environ), workdir / "redis.log"), port


def restart_redis(redis_server: Process, down_for: float = 2.0) -> None:
    """Everything in it is lost: queued and unacknowledged tasks, channel groups."""
    ready = redis_server.log().count(REDIS_READY)
    redis_server.stop()
    time.sleep(down_for)
    redis_server.start()
    wait_until(lambda: redis_server.log().count(REDIS_READY) > ready, 10, "no Redis")


# --- the stack on those servers --------------------------------------------------


@dataclass
class FaultStack:
    stack: Stack
    beat: Process
    redis: Process
    postgres: Postgres
    db_name: str

    @property
    def dsn(self) -> str:
        return self.postgres.url(self.db_name)

    def stop(self) -> None:
        self.beat.stop()
        self.stack.stop()
        self.redis.stop()
        self.postgres.destroy()


def _celery(*args: str) -> list[str]:
    return [str(BIN / "celery"), "-A", "rpm", *args]


def build_fault_stack(workdir: Path) -> FaultStack:
    postgres = Postgres.create()
    postgres.start()
    db_name = "rpm_faults"
    postgres.create_database(db_name)
    redis_server, redis_port = redis_process(workdir)
    redis_server.start()
    wait_until(lambda: REDIS_READY in redis_server.log(), 10, "no Redis")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    ensure_self_signed(cert, key)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url(db_name),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "DEBUG": "true",
        "RPM_VAR_DIR": str(workdir / "var"),
        "MPLBACKEND": "Agg",
        "DEVICE_STALE_GRACE_S": str(STALE_GRACE_S),
        # The emulated QKD link is not under test: keep its CPU out of the way.
        "QKD_RUN_INTERVAL_S": "86400",
        "LOG_LEVEL": "INFO",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("TEST_REDIS_URL", None)
    daphne = Process(
        "daphne",
        [
            str(BIN / "daphne"),
            "-e",
            daphne_tls_endpoint(port, cert, key),
            "rpm.asgi:application",
        ],
        env,
        workdir / "daphne.log",
    )
    worker = Process(
        "worker",
        [
            *_celery("worker", "-l", "INFO", "--concurrency", "2"),
            *("-n", f"faults-{port}@%h", "--without-gossip", "--without-mingle"),
        ],
        env,
        workdir / "worker.log",
    )
    beat = Process(
        "beat",
        _celery("beat", "-l", "INFO", "-s", str(workdir / "beat.db")),
        env,
        workdir / "beat.log",
    )
    stack = Stack(workdir, env, port, cert, daphne, worker)
    return FaultStack(stack, beat, redis_server, postgres, db_name)


def start(faults: FaultStack) -> None:
    subprocess.run(
        [str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=faults.stack.env,
        check=True,
    )
    faults.stack.start_daphne()
    faults.stack.start_worker()
    faults.beat.start()


def provision(faults: FaultStack, devices: int, silent: int) -> dict[str, Any]:
    done = subprocess.run(
        [
            *(str(BIN / "python"), "-m", "tests.integration.faults", "provision"),
            *(str(devices), str(silent)),
        ],
        cwd=ROOT,
        env=faults.stack.env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _provision_ward(devices: int, silent: int) -> dict[str, Any]:
    import django

    django.setup()
    from datetime import date

    from patients.models import CareTeam, Device, Organisation, Patient, User
    from patients.services import issue_clinician_token, provision_device

    organisation = Organisation.objects.create(name="Fault ward")
    team = CareTeam.objects.create(organisation=organisation, name="Everyone")
    clinician = User.objects.create_user(
        username="faults.nurse", password=PASSWORD, organisation=organisation
    )
    team.members.add(clinician)
    fleet = []
    for i in range(devices):
        patient = Patient.objects.create(
            organisation=organisation,
            mrn=f"FAULT-{i:03d}",
            given_name="Fault",
            family_name=f"Patient {i}",
            birth_date=date(1950, 1, 1),
        )
        team.patients.add(patient)
        made = provision_device(
            serial=f"FAULT-{i:03d}", kind=Device.Kind.HUB, patient=patient
        )
        interval = SILENT_INTERVAL_S if i < silent else NORMAL_INTERVAL_S
        Device.objects.filter(pk=made.device.pk).update(expected_interval_s=interval)
        fleet.append({"serial": made.device.serial, "token": made.token})
    return {"clinician": issue_clinician_token(user=clinician), "devices": fleet}


# --- the plan: what each device sends, and which alerts that must raise ----------

# Each batch opens with the four vital signs the alert rules watch; the rest are
# readings no threshold rule applies to (room-air FiO2, diastolic pressure), so
# that the worker, at a few batches a second on this shared machine, keeps up.
WATCHED = (("8867-4", 72.0, "/min"), ("2708-6", 97.0, "%"), ("9279-1", 16.0, "/min"))
WATCHED += (("8310-5", 37.0, "Cel"),)
FILLER = (("3150-0", 21.0, "%"), ("8462-4", 80.0, "mm[Hg]"))


def normal_reading(index: int) -> tuple[str, float, str]:
    if index < len(WATCHED):
        return WATCHED[index]
    return FILLER[index % len(FILLER)]


# One abnormal reading per episode, so that the episode raises once whatever order
# the batches are processed in (retries and the sweep reorder them).
EPISODES: dict[str, tuple[tuple[str, float, str], frozenset[str]]] = {
    "fever": (("8310-5", 40.0, "Cel"), frozenset({"temperature_high"})),
    # Systolic 230 is over its limit and scores 3 in NEWS2: two alerts.
    "hypertension": (
        ("8480-6", 230.0, "mm[Hg]"),
        frozenset({"systolic_bp_high", "news2"}),
    ),
}
EPISODE_CYCLE: tuple[str | None, ...] = ("fever", "hypertension", None)


@dataclass(frozen=True)
class Reading:
    code: str
    value: float
    unit: str
    time: datetime


@dataclass(frozen=True)
class DevicePlan:
    serial: str
    token: str
    batches: list[list[Reading]]
    ecg_every: int
    silent: bool
    expected_kinds: frozenset[str]


def make_plans(
    fleet: list[dict[str, str]],
    *,
    batches: int,
    per_batch: int,
    silent: int,
    start: datetime,
    ecg_every: int = 5,
) -> list[DevicePlan]:
    plans = []
    for i, device in enumerate(fleet):
        is_silent = i < silent
        count = 2 if is_silent else batches
        # A third of the devices have a fever, a third hypertension, a third
        # nothing; the silent ones only fall silent.
        episode = None if is_silent else EPISODE_CYCLE[i % len(EPISODE_CYCLE)]
        plan_batches = _readings(count, per_batch, start, episode, i)
        kinds = EPISODES[episode][1] if episode else frozenset()
        if is_silent:
            kinds = frozenset({"device_stale"})
        plans.append(
            DevicePlan(
                device["serial"],
                device["token"],
                plan_batches,
                ecg_every,
                is_silent,
                kinds,
            )
        )
    return plans


def _readings(
    count: int,
    per_batch: int,
    start: datetime,
    episode: str | None,
    seed: int,
) -> list[list[Reading]]:
    abnormal_at = (seed * 7) % count, seed % len(WATCHED)
    out = []
    for b in range(count):
        batch = []
        for r in range(per_batch):
            code, value, unit = normal_reading(r)
            if episode and (b, r) == abnormal_at:
                code, value, unit = EPISODES[episode][0]
            # Unique per device: a reading is known by (device, code, time).
            when = start + timedelta(seconds=b * per_batch + r)
            batch.append(Reading(code, value, unit, when))
        out.append(batch)
    return out


# --- the fleet -------------------------------------------------------------------


class RecordingClient(DeviceClient):
    """The device client, noting which batches the server acknowledged (2xx): the
    history the checks compare with the database."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acknowledged: list[dict[str, Any]] = []
        self.acknowledged_at: list[float] = []

    def _post(self, batch: StoredBatch) -> requests.Response:
        response = super()._post(batch)
        if 200 <= response.status_code < 300:
            self.acknowledged.append(batch.body)
            self.acknowledged_at.append(time.time())
        return response


@dataclass
class Fleet:
    plans: list[DevicePlan]
    clients: list[RecordingClient]
    ecg_strip: list[int]
    pace_s: float
    sent_observations: int = 0
    sent_ecg: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, deadline_s: float) -> list[str]:
        """Send every plan (one thread per device) and drain every buffer; returns
        the devices whose buffer did not drain in time."""
        threads = [
            threading.Thread(target=self._device, args=(p, c, deadline_s), daemon=True)
            for p, c in zip(self.plans, self.clients, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [
            p.serial
            for p, c in zip(self.plans, self.clients, strict=True)
            if not c.pending().empty or c.pending().dead_letters
        ]

    def _device(
        self, plan: DevicePlan, client: RecordingClient, deadline: float
    ) -> None:
        for b, batch in enumerate(plan.batches):
            for r in batch:
                client.add_observation(r.code, r.value, r.unit, r.time)
            ecg = 0
            if b % plan.ecg_every == plan.ecg_every - 1:
                client.add_ecg("II", 250, batch[0].time, self.ecg_strip)
                ecg = 1
            with self._lock:
                self.sent_observations += len(batch)
                self.sent_ecg += ecg
            client.flush_once()
            time.sleep(self.pace_s)
        while not client.pending().empty and time.monotonic() < deadline:
            report = client.flush_once()
            time.sleep(min(report.retry_in or 0.2, 1.0))


def ecg_strip(seconds: int = 10, fs: int = 250) -> list[int]:
    import numpy as np

    from telemetry.simulator.ecg import EcgStream, Rhythm

    stream = EcgStream(fs, np.random.default_rng(11))
    samples = stream.segment(0.0, seconds, Rhythm("sinus", 72), "clean")
    return np.rint(samples * 1000).astype(int).tolist()


def make_fleet(
    faults: FaultStack, plans: list[DevicePlan], workdir: Path, pace_s: float
) -> Fleet:
    clients = [
        RecordingClient(
            faults.stack.base_url,
            plan.token,
            workdir / "buffers" / f"{plan.serial}.sqlite3",
            ca_file=str(faults.stack.cert),
            backoff=Backoff(base_s=0.2, cap_s=3.0),
            timeout_s=10.0,
            max_batch_observations=600,
        )
        for plan in plans
    ]
    return Fleet(plans, clients, ecg_strip(), pace_s)


# --- chaos -----------------------------------------------------------------------


@dataclass
class Chaos:
    """Kills the Celery worker with SIGKILL every ``kill_every_s`` and, once each
    during the run, restarts Redis, Daphne and PostgreSQL."""

    faults: FaultStack
    kill_every_s: float
    schedule: list[tuple[float, str]]
    log: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        started = time.monotonic()
        pending = sorted(self.schedule)
        next_kill = started + self.kill_every_s
        while not self.stop.is_set():
            now = time.monotonic()
            if pending and now - started >= pending[0][0]:
                self._do(pending.pop(0)[1], started)
            elif now >= next_kill:
                self._do("kill-worker", started)
                next_kill = time.monotonic() + self.kill_every_s
            self.stop.wait(0.2)
        self._ensure_worker()

    def _do(self, what: str, started: float) -> None:
        self.log.append((round(time.monotonic() - started, 1), what))
        stack = self.faults.stack
        actions: dict[str, Callable[[], None]] = {
            "kill-worker": self._kill_worker,
            "restart-redis": lambda: restart_redis(self.faults.redis),
            "restart-daphne": lambda: stack.restart_daphne(down_for=2.0),
            "restart-postgres": lambda: self.faults.postgres.restart(down_for=2.0),
        }
        actions[what]()

    def _kill_worker(self) -> None:
        self.faults.stack.worker.stop(signal.SIGKILL)
        self.faults.stack.start_worker()

    def _ensure_worker(self) -> None:
        worker = self.faults.stack.worker
        if worker.popen is None or worker.popen.poll() is not None:
            self.faults.stack.start_worker()


@contextmanager
def chaos_running(chaos: Chaos) -> Iterator[Chaos]:
    thread = threading.Thread(target=chaos.run, daemon=True)
    thread.start()
    try:
        yield chaos
    finally:
        chaos.stop.set()
        thread.join(120)


# --- the checks ------------------------------------------------------------------

ReadingKey = tuple[str, str, str, str, float]


@dataclass(frozen=True)
class Verdict:
    acknowledged: int
    stored: int
    lost: list[ReadingKey]
    duplicated: list[ReadingKey]
    unexpected: list[ReadingKey]


def _instant(value: str | datetime) -> str:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(UTC).isoformat()


def acknowledged_readings(fleet: Fleet) -> list[ReadingKey]:
    keys = []
    for plan, client in zip(fleet.plans, fleet.clients, strict=True):
        for body in client.acknowledged:
            keys += [
                (
                    plan.serial,
                    body["batch_id"],
                    o["code"],
                    _instant(o["time"]),
                    round(float(o["value"]), 3),
                )
                for o in body["observations"]
            ]
    return keys


def stored_readings(dsn: str) -> list[ReadingKey]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT d.serial, b.batch_id::text, o.code, o.time, o.value "
            "FROM telemetry_observation o "
            "JOIN telemetry_batch b ON b.id = o.batch_id "
            "JOIN patients_device d ON d.id = o.device_id"
        ).fetchall()
    return [(s, b, c, _instant(t), round(v, 3)) for s, b, c, t, v in rows]


def compare(acknowledged: list[ReadingKey], stored: list[ReadingKey]) -> Verdict:
    acked, kept = Counter(acknowledged), Counter(stored)
    return Verdict(
        acknowledged=len(acknowledged),
        stored=len(stored),
        lost=sorted((acked - kept).elements()),
        duplicated=sorted(k for k, n in kept.items() if n > 1),
        unexpected=sorted(k for k in kept if k not in acked),
    )


def pending_batches(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT count(*) FROM telemetry_batch WHERE state = 'pending'"
        ).fetchone()[0]


@dataclass(frozen=True)
class EcgVerdict:
    segments: int
    unanalysed: list[int]
    acknowledged: int


def ecg_verdict(dsn: str, fleet: Fleet) -> EcgVerdict:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT s.id, s.state, count(a.id) FROM telemetry_ecgsegment s "
            "LEFT JOIN telemetry_ecganalysis a ON a.segment_id = s.id "
            "GROUP BY s.id, s.state"
        ).fetchall()
    acked = sum(len(b["ecg"]) for c in fleet.clients for b in c.acknowledged)
    return EcgVerdict(
        segments=len(rows),
        unanalysed=[pk for pk, state, n in rows if state != "analysed" or n != 1],
        acknowledged=acked,
    )


def raised_alerts(dsn: str) -> Counter[tuple[str, str]]:
    """How many times each (device serial of the patient, kind) was raised."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT p.mrn, a.kind, count(*) FROM alerts_alertevent e "
            "JOIN alerts_alert a ON a.id = e.alert_id "
            "JOIN patients_patient p ON p.id = a.patient_id "
            "WHERE e.type = 'raised' GROUP BY p.mrn, a.kind"
        ).fetchall()
    return Counter({(mrn, kind): n for mrn, kind, n in rows})


def expected_alerts(plans: list[DevicePlan]) -> Counter[tuple[str, str]]:
    # Each device belongs to the patient with the same MRN as its serial.
    return Counter({(p.serial, kind): 1 for p in plans for kind in p.expected_kinds})


def stale_delays(dsn: str, plans: list[DevicePlan]) -> dict[str, float | None]:
    """Seconds from a silent device's last stored batch to its stale alarm, minus
    its window (interval + grace); None when no alarm was raised."""
    delays: dict[str, float | None] = {}
    with psycopg.connect(dsn) as conn:
        for plan in (p for p in plans if p.silent):
            row = conn.execute(
                "SELECT max(b.received_at), min(a.raised_at), d.expected_interval_s "
                "FROM patients_device d JOIN telemetry_batch b ON b.device_id = d.id "
                "LEFT JOIN alerts_alert a ON a.device_id = d.id "
                "AND a.kind = 'device_stale' WHERE d.serial = %s "
                "GROUP BY d.expected_interval_s",
                [plan.serial],
            ).fetchone()
            last, raised, interval = row
            window = timedelta(seconds=interval + STALE_GRACE_S)
            delays[plan.serial] = (
                None if raised is None else (raised - last - window).total_seconds()
            )
    return delays


# --- the clinician whose socket drops --------------------------------------------


@dataclass
class Watcher:
    """A clinician's alert socket: records every alert it is shown, reconnects when
    the socket drops and then catches up with GET /api/v1/alerts/?after_seq=N."""

    faults: FaultStack
    token: str
    seen: set[int] = field(default_factory=set)
    last_seq: int = 0
    drops: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        first = True
        while not self.stop.is_set():
            try:
                self._listen(catch_up=not first)
            except Exception:  # any way a socket dies is a drop
                self.drops += 1
            first = False
            self.stop.wait(1.0)

    def _listen(self, catch_up: bool) -> None:
        from websockets.sync.client import connect

        stack = self.faults.stack
        headers = {"Authorization": f"Token {self.token}", "Origin": stack.base_url}
        with connect(
            stack.ws_url + "/ws/alerts/",
            additional_headers=headers,
            ssl=stack.ssl_context(),
            open_timeout=10,
        ) as ws:
            # Subscribed first, then catch up: nothing falls between the two.
            if catch_up:
                self._catch_up()
            while not self.stop.is_set():
                try:
                    message = json.loads(ws.recv(timeout=1.0))
                except TimeoutError:
                    continue
                if message.get("type") == "alert":
                    self.seen.add(message["alert"]["id"])
                    self.last_seq = max(self.last_seq, message["seq"])

    def _catch_up(self) -> None:
        http = self.faults.stack.session()
        http.headers["Authorization"] = f"Token {self.token}"
        more = True
        while more:
            answer = http.get(
                self.faults.stack.base_url + "/api/v1/alerts/",
                params={"after_seq": self.last_seq},
                timeout=10,
            )
            answer.raise_for_status()  # a failed catch-up is a drop: start again
            page = answer.json()
            for alert in page["results"]:
                self.seen.add(alert["id"])
                self.last_seq = max(self.last_seq, alert["seq"])
            more = page["more"]


def visible_alert_ids(dsn: str) -> set[int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT id FROM alerts_alert WHERE patient_id IS NOT NULL")
        return {pk for (pk,) in rows}


# --- one trial, start to finish -------------------------------------------------


@dataclass(frozen=True)
class TrialSize:
    devices: int
    silent: int
    batches: int
    per_batch: int
    pace_s: float


@dataclass(frozen=True)
class Trial:
    faults: FaultStack
    fleet: Fleet
    chaos: Chaos
    watcher: Watcher
    undrained: list[str]


def run_trial(
    faults: FaultStack, workdir: Path, size: TrialSize, chaos: Chaos
) -> Trial:
    """Start the stack, send every plan through the chaos, let the sweep and the
    stale detector finish, and hand back what the checks compare."""
    start(faults)
    ward = provision(faults, size.devices, size.silent)
    plans = make_plans(
        ward["devices"],
        batches=size.batches,
        per_batch=size.per_batch,
        silent=size.silent,
        start=datetime.now(UTC) - timedelta(minutes=30),
    )
    fleet = make_fleet(faults, plans, workdir, size.pace_s)
    watcher = Watcher(faults, ward["clinician"])
    listening = threading.Thread(target=watcher.run, daemon=True)
    listening.start()
    with chaos_running(chaos):
        undrained = fleet.run(deadline_s=time.monotonic() + 150 + 10 * size.batches)
        # Every fault must have happened while the devices were sending.
        wait_until(lambda: _faults_done(chaos) >= len(chaos.schedule), 60, "late")
    settle(faults, fleet)
    watcher.stop.set()
    listening.join(30)
    return Trial(faults, fleet, chaos, watcher, undrained)


def _faults_done(chaos: Chaos) -> int:
    return sum(1 for _, what in chaos.log if what != "kill-worker")


def settle(faults: FaultStack, fleet: Fleet, timeout_s: float = 240) -> None:
    """The sweep (celery beat, every 30 s) must finish what the faults left, and
    the stale detector (every 15 s) must have had its chance."""
    wait_until(
        lambda: pending_batches(faults.dsn) == 0,
        timeout_s,
        lambda: f"{pending_batches(faults.dsn)} batches never processed",
        interval=2.0,
    )
    silent_since = max(
        (
            max(c.acknowledged_at)
            for p, c in zip(fleet.plans, fleet.clients, strict=True)
            if p.silent and c.acknowledged_at
        ),
        default=time.time(),
    )
    window = SILENT_INTERVAL_S + STALE_GRACE_S + STALE_SLACK.total_seconds()
    time.sleep(max(0.0, silent_since + window - time.time()))


if __name__ == "__main__" and sys.argv[1:2] == ["provision"]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rpm.settings")
    print(json.dumps(_provision_ward(int(sys.argv[2]), int(sys.argv[3]))))
