"""Real servers for the benchmarks: a dedicated PostgreSQL database, Redis db 14,
Daphne (or uvicorn) over TLS and a Celery worker, plus CPU accounting from /proc.

Reuses the integration suite's process handling (tests/integration/stack.py); only
the database, the settings and the server command differ.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from security.tls import daphne_tls_endpoint, ensure_self_signed  # noqa: E402
from tests.integration.stack import BIN, Process, free_port, wait_until  # noqa: E402

BENCH_DB = "rpm_bench"
BENCH_REDIS_DB = 14
# Tables the bench never empties: migrate fills them and nothing here writes them.
KEPT_TABLES = ("django_migrations", "django_content_type", "auth_permission")
TELEMETRY_TABLES = ("telemetry_observation", "telemetry_ecgsegment", "telemetry_batch")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def bench_database_url() -> str:
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/x"
    return urlunsplit(urlsplit(base)._replace(path=f"/{BENCH_DB}"))


def bench_redis_url() -> str:
    base = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    return urlunsplit(urlsplit(base)._replace(path=f"/{BENCH_REDIS_DB}"))


def pg_dsn(url: str) -> str:
    """psycopg accepts postgres:// URLs; dj-database-url's postgresql+ forms not."""
    return url.replace("postgresql://", "postgres://", 1)


def bench_env(workdir: Path, *, debug: bool, rate: str, settings: str) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": bench_database_url(),
        "REDIS_URL": bench_redis_url(),
        "DEBUG": "true" if debug else "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DEVICE_RATE": rate,
        "RPM_VAR_DIR": str(workdir / "var"),
        "MPLBACKEND": "Agg",
        "LOG_LEVEL": "INFO",  # the worker says "ready." at INFO
        "DJANGO_SETTINGS_MODULE": settings,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("TEST_REDIS_URL", None)
    return env


def create_database(env: dict) -> None:
    """Create rpm_bench if missing, migrate it, and empty every table we wrote and
    the bench's Redis db (tasks queued by an interrupted run would delay this one)."""
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    admin = urlunsplit(urlsplit(pg_dsn(env["DATABASE_URL"]))._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    subprocess.run(
        [str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    with psycopg.connect(pg_dsn(env["DATABASE_URL"]), autocommit=True) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
            if name not in KEPT_TABLES
        ]
        conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")


def provision_devices(organisation: str, count: int, **device_options) -> list:
    """A new organisation with ``count`` patients, each with a hub device assigned;
    the ProvisionedDevice (device and token) of each. Django must be set up."""
    from datetime import date

    from patients.models import Device, Organisation, Patient
    from patients.services import provision_device

    org = Organisation.objects.create(name=organisation)
    provisioned = []
    for i in range(count):
        patient = Patient.objects.create(
            organisation=org,
            mrn=f"BENCH-{i}",
            given_name="Bench",
            family_name=f"Patient {i}",
            birth_date=date(1950, 1, 1),
        )
        provisioned.append(
            provision_device(
                serial=f"BENCH-{i}",
                kind=Device.Kind.HUB,
                patient=patient,
                **device_options,
            )
        )
    return provisioned


def bench_admin(organisation: str):
    """An admin of the organisation provision_devices made: their alert stream
    (and its pushes) covers every bench patient."""
    from patients.models import Organisation, Role, User

    return User.objects.create(
        username="bench-admin",
        organisation=Organisation.objects.get(name=organisation),
        role=Role.ADMIN,
    )


def truncate_telemetry(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE " + ", ".join(TELEMETRY_TABLES) + " CASCADE")
        conn.execute("VACUUM ANALYZE " + ", ".join(TELEMETRY_TABLES))


@dataclass
class Servers:
    """HTTP server processes (one per port), a Celery worker, their certificate."""

    kind: str
    ports: list[int]
    cert: Path
    processes: list[Process]
    worker: Process | None
    extra_path: str = ""
    pids: list[int] = field(default_factory=list)

    def urls(self) -> list[str]:
        return [f"https://127.0.0.1:{port}" for port in self.ports]

    def start(self) -> None:
        for process in self.processes:
            process.start()
        for url, process in zip(self.urls(), self.processes, strict=True):
            wait_until(
                lambda url=url: _answers(url, self.cert),
                60,
                lambda process=process: (
                    f"{process.name} did not start:\n" + process.log()[-3000:]
                ),
            )
        if self.worker is not None:
            self.worker.start()
            wait_until(
                lambda: "ready." in self.worker.log(),
                60,
                lambda: f"the Celery worker did not start:\n{self.worker.log()}",
            )

    def stop(self) -> None:
        for process in [*self.processes, self.worker]:
            if process is not None:
                process.stop()

    def server_pids(self) -> list[int]:
        return [p.popen.pid for p in self.processes if p.popen]

    def worker_pids(self) -> list[int]:
        return [self.worker.popen.pid] if self.worker and self.worker.popen else []


def _answers(url: str, cert: Path) -> bool:
    """Up when the upload endpoint refuses a request without a token."""
    http = requests.Session()
    http.trust_env = False
    try:
        answer = http.post(
            url + "/api/v1/telemetry/batches", json={}, verify=str(cert), timeout=2
        )
    except requests.RequestException:
        return False
    return answer.status_code == 401


def build_servers(
    workdir: Path,
    env: dict,
    *,
    kind: str,
    count: int,
    worker: bool,
    app: str,
    worker_concurrency: int = 1,
) -> Servers:
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    ensure_self_signed(cert, key)
    if kind == "daphne":
        ports = [free_port() for _ in range(count)]
        processes = [_daphne(workdir, env, port, cert, key, app) for port in ports]
    else:
        ports = [free_port()]
        processes = [_uvicorn(workdir, env, ports[0], count, cert, key, app)]
    celery = _worker(workdir, env, worker_concurrency) if worker else None
    return Servers(kind, ports, cert, processes, celery)


def _daphne(
    workdir: Path, env: dict, port: int, cert: Path, key: Path, app: str
) -> Process:
    command = [
        str(BIN / "daphne"),
        "-e",
        daphne_tls_endpoint(port, cert, key),
        app,
    ]
    return Process(f"daphne:{port}", command, env, workdir / f"daphne-{port}.log")


def _uvicorn(
    workdir: Path, env: dict, port: int, workers: int, cert: Path, key: Path, app: str
) -> Process:
    command = [
        str(BIN / "python"),
        "-m",
        "uvicorn",
        app,
        "--host=127.0.0.1",
        f"--port={port}",
        f"--workers={workers}",
        f"--ssl-certfile={cert}",
        f"--ssl-keyfile={key}",
        "--log-level=warning",
    ]
    return Process("uvicorn", command, env, workdir / "uvicorn.log")


def _worker(workdir: Path, env: dict, concurrency: int = 1) -> Process:
    command = [
        str(BIN / "celery"),
        "-A",
        "rpm",
        "worker",
        "-l",
        "INFO",
        "--concurrency",
        str(concurrency),
        "-n",
        f"bench-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    # INFO, as deployed: it also logs "ready.", which start() waits for.
    return Process("worker", command, env, workdir / "worker.log")


# --- CPU accounting ----------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def tree_pids(roots: list[int]) -> list[int]:
    """The processes under roots, roots included (live ones)."""
    tree, found, stack = _children(), [], list(roots)
    while stack:
        pid = stack.pop()
        stack += tree.get(pid, [])
        found.append(pid)
    return found


def tree_cpu_s(roots: list[int]) -> float:
    """User + system CPU seconds of the processes under roots (live ones)."""
    return sum(_cpu_s(pid) for pid in tree_pids(roots))


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime are fields 14 and 15 of stat; after the comm they are 11 and 12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu_s() -> float:
    """Every PostgreSQL process: the backends serving us, and any serving others."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith("postgres"):
                total += _cpu_s(int(entry.name))
    return total


def machine_busy_s() -> tuple[float, float]:
    """(busy CPU seconds, total CPU seconds) across all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK_TCK, sum(values) / CLK_TCK


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False
