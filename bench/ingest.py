"""Ingest throughput: device uploads through real HTTPS servers into PostgreSQL.

Run from the repo root (PostgreSQL and Redis running; DATABASE_URL / REDIS_URL name
the servers, the bench uses its own database rpm_bench and Redis db 14):

    .venv/bin/python bench/ingest.py [--quick] [--duration S] [--devices N]
                                     [--servers N] [--server daphne|uvicorn]

For each batch size (1, 60, 600 vital-sign observations; one 10 s ECG segment at
250 Hz) it runs a closed loop (every device uploads back to back: the maximum), then
an open loop at --load of that maximum (each device on its own schedule: the
latency a sustained rate gets), checks that the stored rows equal what was
acknowledged, and copies the same rows into the same table with psycopg COPY (the
ceiling). Its last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import psycopg

from _stack import (  # isort: skip
    ROOT,
    Servers,
    bench_env,
    build_servers,
    create_database,
    machine_busy_s,
    pg_dsn,
    postgres_cpu_s,
    provision_devices,
    tree_cpu_s,
    truncate_telemetry,
    wait_for,
)

URL = "/api/v1/telemetry/batches"
TEMPLATE_BATCH_ID = "00000000-0000-4000-8000-000000000000"
# Heart rate, SpO2, respiratory rate, temperature: no blood-pressure pairs to check.
VITALS = (("8867-4", "/min", 72), ("2708-6", "%", 97), ("9279-1", "/min", 16))
VITALS += (("8310-5", "Cel", 36.9),)
ECG_HZ, ECG_S = 250, 10
COPY_COLUMNS = {
    "telemetry_observation": "patient_id, device_id, batch_id, code, value, text, "
    "unit, time",
    "telemetry_ecgsegment": "patient_id, device_id, batch_id, lead, fs_hz, start, "
    "sample_count, dtype, data, state",
}


# --- bodies -----------------------------------------------------------------


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def vitals_body(size: int, now: datetime) -> bytes:
    observations = []
    for i in range(size):
        code, unit, value = VITALS[i % len(VITALS)]
        when = now - timedelta(seconds=i // len(VITALS) + 1)
        observations.append(
            {"code": code, "value": value, "unit": unit, "time": iso(when)}
        )
    body = {"batch_id": TEMPLATE_BATCH_ID, "sent_at": iso(now), "battery_pct": 80}
    return json.dumps({**body, "observations": observations}).encode()


def ecg_body(now: datetime) -> bytes:
    rng = random.Random(7)
    samples = [
        int(900 * math.sin(i / 12) ** 15 + rng.gauss(0, 20))
        for i in range(ECG_HZ * ECG_S)
    ]
    segment = {
        "lead": "II",
        "fs_hz": ECG_HZ,
        "start": iso(now - timedelta(seconds=ECG_S)),
        "unit": "uV",
        "samples": samples,
    }
    body = {"batch_id": TEMPLATE_BATCH_ID, "sent_at": iso(now), "ecg": [segment]}
    return json.dumps(body).encode()


# --- load -------------------------------------------------------------------


@dataclass
class Tally:
    """What the server acknowledged, and how long each answer took."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    acked_batches: int = 0
    acked_observations: int = 0
    acked_segments: int = 0

    def add(self, status: int, answer: dict | None, latency: float) -> None:
        self.statuses[status] += 1
        self.latencies.append(latency)
        if status == 201 and answer is not None:
            self.acked_batches += 1
            self.acked_observations += answer["observations"]
            self.acked_segments += answer["ecg_segments"]

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Load:
    urls: list[str]
    tokens: list[str]
    body: bytes
    seconds: float
    interval: float | None  # None: closed loop, back to back


async def run_load(load: Load, context: ssl.SSLContext, tally: Tally) -> float:
    connector = aiohttp.TCPConnector(limit=0, ssl=context)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        start = time.perf_counter()
        deadline = start + load.seconds
        await asyncio.gather(
            *(
                _device(http, load, i, start, deadline, tally)
                for i in range(len(load.tokens))
            )
        )
        return time.perf_counter() - start


async def _device(
    http: aiohttp.ClientSession,
    load: Load,
    i: int,
    start: float,
    deadline: float,
    tally: Tally,
) -> None:
    url = load.urls[i % len(load.urls)] + URL
    headers = {
        "Authorization": f"Bearer {load.tokens[i]}",
        "Content-Type": "application/json",
    }
    due = start + (random.random() * load.interval if load.interval else 0.0)
    while True:
        now = time.perf_counter()
        if load.interval is not None and due > now:
            await asyncio.sleep(due - now)
        # Latency counts from when the device meant to send (no coordinated omission).
        sent = max(due, start) if load.interval is not None else time.perf_counter()
        if sent >= deadline:
            return
        body = load.body.replace(TEMPLATE_BATCH_ID.encode(), str(uuid.uuid4()).encode())
        await _post(http, url, headers, body, sent, tally)
        if load.interval is not None:
            due += load.interval


async def _post(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict,
    body: bytes,
    sent: float,
    tally: Tally,
) -> None:
    try:
        async with http.post(url, data=body, headers=headers) as response:
            raw = await response.read()
            status = response.status
    except (TimeoutError, aiohttp.ClientError) as error:
        tally.add(599, None, time.perf_counter() - sent)
        tally.statuses[type(error).__name__] += 1
        return
    answer = json.loads(raw) if status == 201 else None
    tally.add(status, answer, time.perf_counter() - sent)


# --- measurement ------------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds used by each party over one run."""

    servers: Servers
    marks: dict[str, float] = field(default_factory=dict)

    def read(self) -> dict[str, float]:
        busy, total = machine_busy_s()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "server": tree_cpu_s(self.servers.server_pids()),
            "worker": tree_cpu_s(self.servers.worker_pids()),
            "postgres": postgres_cpu_s(),
            "client": usage.ru_utime + usage.ru_stime,
            "machine": busy,
            "capacity": total,
        }

    def start(self) -> None:
        self.marks = self.read()

    def used(self) -> dict[str, float]:
        now = self.read()
        spent = {k: now[k] - self.marks[k] for k in now}
        capacity = spent.pop("capacity")
        spent["other"] = spent["machine"] - sum(
            spent[k] for k in ("server", "worker", "postgres", "client")
        )
        spent["idle_pct"] = 100 * (1 - spent["machine"] / capacity) if capacity else 0
        return spent


class ConnectionWatch(threading.Thread):
    """Samples how many PostgreSQL connections the bench database has open. Its
    connection is opened before the load, so a server that exhausts
    max_connections cannot lock the bench out."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.peak, self.stop_flag = 0, threading.Event()

    def run(self) -> None:
        with self.conn.cursor() as cursor:
            while not self.stop_flag.wait(0.5):
                (count,) = cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                    "current_database()"
                ).fetchone()
                self.peak = max(self.peak, count - 1)

    def sessions_opened(self) -> int:
        """Connections ever opened to the bench database (PostgreSQL >= 14)."""
        with self.conn.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            (count,) = cursor.execute(
                "SELECT sessions FROM pg_stat_database "
                "WHERE datname = current_database()"
            ).fetchone()
            return count


@dataclass
class Result:
    phase: str
    mode: str
    seconds: float
    tally: Tally
    readings_per_batch: int
    cpu: dict[str, float]
    peak_connections: int = 0
    new_connections: int = 0

    @property
    def requests_per_s(self) -> float:
        return sum(self.tally.statuses[s] for s in (200, 201)) / self.seconds

    @property
    def readings_per_s(self) -> float:
        return self.tally.acked_batches * self.readings_per_batch / self.seconds

    def cpu_pct(self, who: str) -> float:
        return 100 * self.cpu[who] / self.seconds

    def errors(self) -> dict:
        return {str(k): v for k, v in self.tally.statuses.items() if k != 201}


def measure(
    load: Load,
    context: ssl.SSLContext,
    servers: Servers,
    dsn: str,
    phase: str,
    readings_per_batch: int,
) -> tuple[Result, Tally]:
    tally, cpu, watch = Tally(), Cpu(servers), ConnectionWatch(dsn)
    opened = watch.sessions_opened()
    watch.start()
    cpu.start()
    seconds = asyncio.run(run_load(load, context, tally))
    spent = cpu.used()
    watch.stop_flag.set()
    watch.join()
    time.sleep(1.5)  # PostgreSQL flushes its statistics at most once a second
    result = Result(
        phase,
        "closed" if load.interval is None else "open",
        seconds,
        tally,
        readings_per_batch,
        spent,
        watch.peak,
        watch.sessions_opened() - opened,
    )
    watch.conn.close()
    return result, tally


# --- checks and the ceiling -------------------------------------------------


def drain_and_check(dsn: str, tallies: list[Tally], worker: bool) -> tuple[str, float]:
    """Wait for the worker to process every batch, then compare stored with acked."""
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:

        def pending() -> int:
            return conn.execute(
                "SELECT count(*) FROM telemetry_batch WHERE state = 'pending'"
            ).fetchone()[0]

        drained = not worker or wait_for(lambda: pending() == 0, 120)
        lag = time.monotonic() - started
        batches, observations = conn.execute(
            "SELECT count(*), coalesce(sum(observation_count), 0) FROM telemetry_batch"
        ).fetchone()
        (stored_obs,) = conn.execute(
            "SELECT count(*) FROM telemetry_observation"
        ).fetchone()
        (segments,) = conn.execute(
            "SELECT count(*) FROM telemetry_ecgsegment"
        ).fetchone()
    acked = (
        sum(t.acked_batches for t in tallies),
        sum(t.acked_observations for t in tallies),
        sum(t.acked_segments for t in tallies),
    )
    stored = (batches, stored_obs, segments)
    problems = []
    if stored != acked:
        problems.append(f"stored (batches, obs, ecg) {stored} != acknowledged {acked}")
    if observations != stored_obs:
        problems.append(f"batch counts say {observations} obs, table has {stored_obs}")
    if not drained:
        problems.append(f"{pending()} batches still pending after 120 s")
    return ("ok " + str(stored) if not problems else "; ".join(problems)), lag


def copy_ceiling(dsn: str, table: str) -> tuple[int, float]:
    """Read the phase's rows, empty the table, COPY them back in: rows per second."""
    columns = COPY_COLUMNS[table]
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT {columns} FROM {table}").fetchall()  # noqa: S608
        types = [
            oid
            for (oid,) in conn.execute(
                "SELECT atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attname = ANY(%s) ORDER BY array_position(%s, attname::text)",
                [table, columns.split(", "), columns.split(", ")],
            )
        ]
        conn.execute(f"TRUNCATE {table} CASCADE")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor().copy(
            f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - started
        (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    assert count == len(rows), f"COPY stored {count} of {len(rows)} rows"
    return len(rows), (len(rows) / seconds if seconds else 0.0)


# --- the run ----------------------------------------------------------------


def provision(count: int) -> list[str]:
    import django

    django.setup()
    return [p.token for p in provision_devices("Bench hospital", count)]


@dataclass(frozen=True)
class Phase:
    name: str
    table: str
    readings_per_batch: int
    body: bytes


def phases(sizes: list[str]) -> list[Phase]:
    now = datetime.now(UTC)
    out = []
    for size in sizes:
        if size == "ecg":
            out.append(
                Phase("ecg 10 s", "telemetry_ecgsegment", ECG_HZ * ECG_S, ecg_body(now))
            )
        else:
            n = int(size)
            out.append(
                Phase(f"vitals {n}", "telemetry_observation", n, vitals_body(n, now))
            )
    return out


def run_phase(
    phase: Phase, args: argparse.Namespace, servers: Servers, tokens: list[str]
) -> dict:
    dsn = pg_dsn(servers_env(args)["DATABASE_URL"])
    context = ssl.create_default_context(cafile=str(servers.cert))
    urls = servers.urls()
    truncate_telemetry(dsn)
    closed_load = Load(urls, tokens, phase.body, args.probe, None)
    closed, closed_tally = measure(
        closed_load, context, servers, dsn, phase.name, phase.readings_per_batch
    )
    if args.rate:
        target = args.rate / phase.readings_per_batch
    else:
        target = args.load * closed.requests_per_s
    interval = len(tokens) / max(target, 0.1)
    open_load = Load(urls, tokens, phase.body, args.duration, interval)
    opened, open_tally = measure(
        open_load, context, servers, dsn, phase.name, phase.readings_per_batch
    )
    check, lag = drain_and_check(dsn, [closed_tally, open_tally], not args.no_worker)
    rows, copy_rate = copy_ceiling(dsn, phase.table)
    copy_per_reading = copy_rate * (ECG_HZ * ECG_S if "ecg" in phase.name else 1)
    return {
        "phase": phase.name,
        "closed": closed,
        "open": opened,
        "offered_rps": target,
        "check": check,
        "drain_s": lag,
        "copy_rows": rows,
        "copy_rows_per_s": copy_rate,
        "copy_readings_per_s": copy_per_reading,
    }


_ENV: dict = {}


def servers_env(args: argparse.Namespace) -> dict:
    if not _ENV:
        workdir = Path(tempfile.mkdtemp(prefix="rpm-bench-"))
        env = bench_env(
            workdir, debug=args.debug, rate="1000000/min", settings="rpm.settings"
        )
        extra = [args.extra_path] if args.extra_path else []
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *extra])
        _ENV.update(env, _workdir=str(workdir))
    return _ENV


def report_line(r: dict, mode: str) -> str:
    res: Result = r[mode]
    cpu = " ".join(
        f"{who} {res.cpu_pct(who):3.0f}%"
        for who in ("server", "worker", "postgres", "client", "other")
    )
    return (
        f"{r['phase']:>10} {mode:>6} {res.requests_per_s:7.1f} req/s "
        f"{res.readings_per_s:9.0f} readings/s  p50 {res.tally.percentile_ms(0.5):6.1f}"
        f" ms  p99 {res.tally.percentile_ms(0.99):7.1f} ms  errors {res.errors()}  "
        f"cpu: {cpu} idle {res.cpu['idle_pct']:.0f}%  "
        f"pg conns peak {res.peak_connections} new {res.new_connections}"
    )


def summarise(results: list[dict], args: argparse.Namespace) -> dict:
    print(
        f"\nserver {args.server} x{args.servers}, {args.devices} devices, "
        f"DEBUG={'on' if args.debug else 'off'}, "
        f"worker={'off' if args.no_worker else 'on'}, "
        f"closed {args.probe:g} s then open {args.duration:g} s per size"
    )
    for r in results:
        print(report_line(r, "closed"))
        print(report_line(r, "open"))
        ratio = r["open"].readings_per_s / r["copy_readings_per_s"]
        print(
            f"{'':>10} COPY {r['copy_rows']} rows: {r['copy_rows_per_s']:9.0f} rows/s"
            f" -> open-loop ratio {ratio:.1%}; worker drained in {r['drain_s']:.1f} s;"
            f" check: {r['check']}"
        )
    vitals = [r for r in results if r["phase"].startswith("vitals")] or results
    best = max(vitals, key=lambda r: r["open"].readings_per_s)
    return {
        "bench": "ingest",
        "readings_per_s": round(best["open"].readings_per_s),
        "p99_ms": round(best["open"].tally.percentile_ms(0.99), 1),
        "copy_ratio": round(
            best["open"].readings_per_s / best["copy_readings_per_s"], 3
        ),
        "batch": best["phase"],
        "server": f"{args.server}x{args.servers}",
        "checks_ok": all(r["check"].startswith("ok") for r in results),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (~1 min)")
    parser.add_argument("--duration", type=float, default=15, help="open-loop s")
    parser.add_argument("--probe", type=float, default=None, help="closed-loop s")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--servers", type=int, default=1, help="server processes")
    parser.add_argument("--server", choices=("daphne", "uvicorn"), default="daphne")
    parser.add_argument("--sizes", default="1,60,600,ecg")
    parser.add_argument("--load", type=float, default=0.7, help="open loop share")
    parser.add_argument("--rate", type=float, default=0, help="open-loop readings/s")
    parser.add_argument("--no-worker", action="store_true", help="pure ingest")
    parser.add_argument("--debug", action="store_true", help="DEBUG=true server")
    parser.add_argument(
        "--extra-path", default="", help="PYTHONPATH entry holding uvicorn etc."
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.devices = min(args.duration, 6), min(args.devices, 50)
    args.probe = args.probe or max(3.0, args.duration / 3)
    return args


def main() -> None:
    args = parse_args()
    env = servers_env(args)
    os.environ.update({k: v for k, v in env.items() if not k.startswith("_")})
    if args.extra_path:
        sys.path.append(args.extra_path)
    create_database(env)
    tokens = provision(args.devices)
    workdir = Path(env["_workdir"])
    servers = build_servers(
        workdir,
        env,
        kind=args.server,
        count=args.servers,
        worker=not args.no_worker,
        app="rpm.asgi:application",
    )
    servers.start()
    load_before = os.getloadavg()
    try:
        results = [
            run_phase(phase, args, servers, tokens)
            for phase in phases(args.sizes.split(","))
        ]
    finally:
        servers.stop()
    print(f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"server logs: {workdir}")
    print(json.dumps(summarise(results, args)))


if __name__ == "__main__":
    sys.exit(main())
