"""Time from a device's POST of an abnormal reading to the alert on a clinician's
WebSocket, with Daphne, a Celery worker, PostgreSQL and Redis all real.

N simulated devices (one patient each) upload normal vitals every --interval
seconds on loopback; once per device, at a random moment, a batch carries a fever
(39.8 °C: the temperature_high alert, which has no persistence delay). An admin
listens on /ws/alerts/ and every "raised" temperature_high event is matched to
its POST. Baseline, in the same run: the POST round trip alone.

    .venv/bin/python bench/alert_latency.py --devices 10 100 1000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._stack import (  # noqa: E402
    bench_admin,
    build_servers,
    create_database,
    provision_devices,
    tree_cpu_s,
)

FEVER = 39.8


@dataclass
class Run:
    devices: int
    sent_at: dict[int, float] = field(default_factory=dict)  # patient id -> POST start
    latencies_ms: list[float] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    errors: int = 0
    fevers_acknowledged: int = 0


def iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def vitals(temperature: float) -> dict:
    now = iso_now()
    return {
        "batch_id": str(uuid.uuid4()),
        "sent_at": now,
        "battery_pct": 90,
        "observations": [
            {
                "code": "8867-4",
                "value": random.randint(64, 80),
                "unit": "/min",
                "time": now,
            },
            {"code": "2708-6", "value": 97, "unit": "%", "time": now},
            {"code": "9279-1", "value": 15, "unit": "/min", "time": now},
            {"code": "8310-5", "value": temperature, "unit": "Cel", "time": now},
        ],
    }


def provision(devices: int, env: dict) -> tuple[str, list[tuple[int, str]]]:
    """An admin's API token and (patient id, device token) for each device, in the
    freshly emptied bench database."""
    # Provisioning runs here, in the bench's own process: development settings
    # (no broker), whatever the servers run with.
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "RPM_VAR_DIR")})
    os.environ["DEBUG"] = "true"
    os.environ.pop("REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "rpm.settings"
    import django

    django.setup()
    from patients.services import issue_clinician_token

    provisioned = provision_devices("Bench", devices, expected_interval_s=3600)
    admin = bench_admin("Bench")
    pairs = [(p.device.patient_id, p.token) for p in provisioned]
    return issue_clinician_token(user=admin), pairs


async def listen(
    url: str,
    token: str,
    ctx: ssl.SSLContext,
    run: Run,
    ready: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    headers = {"Authorization": f"Token {token}", "Origin": url}
    async with websockets.connect(
        url.replace("https", "wss") + "/ws/alerts/",
        additional_headers=headers,
        ssl=ctx,
        max_queue=None,
    ) as ws:
        await ws.recv()  # hello
        ready.set()
        while not stop.is_set():
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except TimeoutError:
                continue
            arrived = time.perf_counter()
            alert = message.get("alert") or {}
            if (
                message.get("event") == "raised"
                and alert.get("kind") == "temperature_high"
            ):
                start = run.sent_at.get(alert["patient_id"])
                if start is not None:
                    run.latencies_ms.append((arrived - start) * 1000)


async def device(
    http: aiohttp.ClientSession,
    url: str,
    patient_id: int,
    token: str,
    run: Run,
    duration: float,
    interval: float,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    fever_at = random.uniform(0.2, 0.8) * duration
    begin = time.perf_counter()
    await asyncio.sleep(random.uniform(0, interval))
    fevered = False
    while (elapsed := time.perf_counter() - begin) < duration:
        fever = not fevered and elapsed >= fever_at
        body = vitals(FEVER if fever else 37.0)
        start = time.perf_counter()
        if fever:
            run.sent_at[patient_id] = start
        try:
            async with http.post(
                url + "/api/v1/telemetry/batches", json=body, headers=headers
            ) as answer:
                await answer.read()
                ok = answer.status in (200, 201)
        except (aiohttp.ClientError, TimeoutError):
            ok = False  # no answer within the client's 30 s: counted as an error
        run.post_ms.append((time.perf_counter() - start) * 1000)
        run.errors += not ok
        if fever:
            fevered = True
            run.fevers_acknowledged += ok
            if not ok:
                run.sent_at.pop(patient_id, None)
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - start)))


async def measure(
    urls: list[str],
    cert: Path,
    admin_token: str,
    pairs: list[tuple[int, str]],
    duration: float,
    interval: float,
) -> Run:
    run = Run(devices=len(pairs))
    ctx = ssl.create_default_context(cafile=str(cert))
    ready, stop = asyncio.Event(), asyncio.Event()
    listener = asyncio.create_task(listen(urls[0], admin_token, ctx, run, ready, stop))
    await asyncio.wait_for(ready.wait(), 30)
    connector = aiohttp.TCPConnector(ssl=ctx, limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:
        await asyncio.gather(
            *(
                device(http, urls[i % len(urls)], pid, token, run, duration, interval)
                for i, (pid, token) in enumerate(pairs)
            )
        )
    await asyncio.sleep(min(30.0, 5 + duration / 4))  # let the last alerts arrive
    stop.set()
    await listener
    return run


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(run: Run, cpu: dict[str, float], seconds: float) -> dict:
    lat = run.latencies_ms
    figures = {
        "bench": "alert_latency",
        "devices": run.devices,
        "p50_ms": round(percentile(lat, 50), 1),
        "p95_ms": round(percentile(lat, 95), 1),
        "p99_ms": round(percentile(lat, 99), 1),
        "max_ms": round(max(lat), 1) if lat else None,
        "alerts_expected": run.fevers_acknowledged,
        "alerts_received": len(lat),
    }
    post_p50 = statistics.median(run.post_ms) if run.post_ms else float("nan")
    print(
        f"N={run.devices:>5}: {len(run.post_ms)} uploads ({run.errors} errors), "
        f"POST p50 {post_p50:.1f} ms (baseline); alert p50 {figures['p50_ms']} "
        f"p95 {figures['p95_ms']} p99 {figures['p99_ms']} max {figures['max_ms']} ms; "
        f"ratio alert/POST p50 {figures['p50_ms'] / post_p50:.2f}; "
        f"received {len(lat)}/{run.fevers_acknowledged}; CPU % over {seconds:.0f} s: "
        + ", ".join(f"{k} {100 * v / seconds:.0f}" for k, v in cpu.items())
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument(
        "--interval",
        type=float,
        default=10.0,
        help="seconds between a device's uploads",
    )
    parser.add_argument("--servers", type=int, default=2, help="Daphne processes")
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="Celery worker concurrency (the Procfile's default)",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="alert-bench-"))
    print(f"server logs: {workdir}")
    env = bench_environment(workdir)
    create_database(env)
    servers = build_servers(
        workdir,
        env,
        kind="daphne",
        count=args.servers,
        worker=True,
        app="rpm.asgi:application",
        worker_concurrency=args.workers,
    )
    results = []
    try:
        servers.start()
        # Each size has patients of its own: an alert still open from an earlier
        # size would take that patient's fever as a repeat, not a "raised".
        admin_token, pairs = provision(sum(args.devices), env)
        for end, n in zip(
            itertools.accumulate(args.devices), args.devices, strict=True
        ):
            results.append(one_size(servers, admin_token, pairs[end - n : end], args))
    finally:
        servers.stop()
    print(json.dumps(results[-1]))


def bench_environment(workdir: Path) -> dict:
    from bench._stack import bench_env

    env = bench_env(workdir, debug=False, rate="100000/min", settings="rpm.settings")
    env["DEVICE_STALE_GRACE_S"] = "3600"
    return env


def one_size(servers, admin_token: str, pairs: list, args: argparse.Namespace) -> dict:
    roots = {"daphne": servers.server_pids(), "worker": servers.worker_pids()}
    before = {k: tree_cpu_s(v) for k, v in roots.items()}
    began = time.perf_counter()
    run = asyncio.run(
        measure(
            servers.urls(),
            servers.cert,
            admin_token,
            pairs,
            args.duration,
            args.interval,
        )
    )
    seconds = time.perf_counter() - began
    cpu = {k: tree_cpu_s(v) - before[k] for k, v in roots.items()}
    return report(run, cpu, seconds)


if __name__ == "__main__":
    main()
