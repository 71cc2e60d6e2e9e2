"""Edge gateway against the cloud path: the same simulated ward through
``forward-all`` and ``edge-first`` gateways, on real servers (Daphne over TLS, a
Celery worker, PostgreSQL, Redis; bench/_stack.py).

Each patient has a gateway (in this process) fed in real time: 2 s ECG chunks at
250 Hz from the simulator's ECG synthesis, vitals every 5 s from the mixed
scenarios' courses. At a random moment each patient goes into atrial
fibrillation. Latency is from the first AF sample's device timestamp to the
"raised" af event on an admin's /ws/alerts/ socket. Bytes are request bodies the
gateways sent. Server CPU is Daphne + worker user+system time. Each policy gets
its own patients (an open alert would otherwise absorb the second run's).

    .venv/bin/python bench/edge.py --patients 50 --duration 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import ssl
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._stack import build_servers, create_database, tree_cpu_s  # noqa: E402
from bench.alert_latency import bench_environment, percentile, provision  # noqa: E402

CHUNK_S, VITALS_EVERY_S, FS = 2.0, 5.0, 250
SINUS_ONLY = {"stable", "sepsis", "hypoxia", "low_battery", "clock_skew", "offline"}


@dataclass
class Bed:
    patient_id: int
    gateway: object
    scenario: object
    base: object
    ecg: object
    onset_s: float | None  # None: no AF in this run (a quiet patient)
    tally: Tally


@dataclass
class Tally:
    body_bytes: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, response, *args, **kwargs) -> None:
        with self.lock:
            self.body_bytes += len(response.request.body or b"")
            self.requests += 1


def make_beds(pairs, mode: str, servers, workdir: Path, args, tally: Tally):
    from telemetry.device import Backoff
    from telemetry.edge.gateway import Gateway
    from telemetry.edge.policy import Policy
    from telemetry.simulator.ecg import EcgStream
    from telemetry.simulator.physiology import baseline
    from telemetry.simulator.scenarios import assign

    rng = random.Random(args.seed)
    beds = []
    for i, ((patient_id, token), scenario) in enumerate(
        zip(pairs, assign(len(pairs), "mixed"), strict=True)
    ):
        gateway = Gateway(
            servers.urls()[i % len(servers.urls())],
            token,
            str(workdir / f"{mode}-{i}.sqlite3"),
            policy=Policy(mode, sample_every_s=args.sample_every),
            ca_file=str(servers.cert),
            backoff=Backoff(base_s=0.5, cap_s=5.0),
            alarm_stream=open("/dev/null", "w"),  # noqa: SIM115 (closed with the bench)
        )
        own = Tally()
        gateway._session.hooks["response"] += [tally.hook, own.hook]
        seed = np.random.default_rng(args.seed + i)
        # AF in a random moment for patients in sinus rhythm; the others are the
        # quiet part of the ward (their own scenarios may still alert).
        onset = rng.uniform(20.0, args.duration - 40.0)
        if scenario.name not in SINUS_ONLY or rng.random() >= args.event_share:
            onset = None
        beds.append(
            Bed(
                patient_id,
                gateway,
                scenario,
                baseline(seed),
                EcgStream(FS, seed),
                onset,
                own,
            )
        )
    return beds


def feed(bed: Bed, start: datetime, t: float, compression: float) -> None:
    from telemetry.simulator.ecg import Rhythm
    from telemetry.simulator.ward import hub_readings

    course = bed.scenario.course(bed.base, t * compression, t)
    if bed.onset_s is not None and t >= bed.onset_s:
        rhythm = Rhythm("af", 105)
    else:
        rhythm = Rhythm(bed.scenario.rhythm(t), course.heart_rate)
    noise = bed.scenario.ecg_noise(t)
    mv = bed.ecg.segment(t, CHUNK_S, rhythm, noise)
    at = start + timedelta(seconds=t)
    bed.gateway.add_ecg("II", FS, at, np.rint(mv * 1000).astype(int).tolist())
    if t % VITALS_EVERY_S < CHUNK_S:
        for r in hub_readings(course, at):
            bed.gateway.add_observation(r.code, r.value, r.unit, r.time)


def onset_sample(bed: Bed, start: datetime) -> float:
    """Wall time of the first AF sample: chunks change rhythm at their start."""
    first_af_chunk = np.ceil(bed.onset_s / CHUNK_S) * CHUNK_S
    return (start + timedelta(seconds=first_af_chunk)).timestamp()


def drive(beds: list[Bed], start: datetime, args, stop: threading.Event) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        tick = 0
        while not stop.is_set():
            due = start + timedelta(seconds=(tick + 1) * CHUNK_S)
            time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            for bed in beds:
                feed(bed, start, tick * CHUNK_S, args.compression)
            tick += 1
            list(pool.map(lambda b: (b.gateway.step(), b.gateway.flush_once()), beds))
            if tick * CHUNK_S >= args.duration:
                stop.set()


async def listen(url, token, cert, wanted: set[int], seen: dict, stop) -> None:
    headers = {"Authorization": f"Token {token}", "Origin": url}
    ctx = ssl.create_default_context(cafile=str(cert))
    async with websockets.connect(
        url.replace("https", "wss") + "/ws/alerts/",
        additional_headers=headers,
        ssl=ctx,
        max_queue=None,
    ) as ws:
        await ws.recv()
        while not stop.is_set():
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except TimeoutError:
                continue
            alert = message.get("alert") or {}
            patient = alert.get("patient_id")
            raised = message.get("event") == "raised" and alert.get("kind") == "af"
            if raised and patient in wanted and patient not in seen:
                seen[patient] = time.time()


def one_mode(mode: str, pairs, servers, admin_token: str, workdir: Path, args):
    tally = Tally()
    beds = make_beds(pairs, mode, servers, workdir, args, tally)
    roots = servers.server_pids() + servers.worker_pids()
    cpu_before = tree_cpu_s(roots)
    wanted = {b.patient_id for b in beds if b.onset_s is not None}
    seen: dict[int, float] = {}
    stop, listening = threading.Event(), threading.Event()
    listener = threading.Thread(
        target=lambda: asyncio.run(
            listen(servers.urls()[0], admin_token, servers.cert, wanted, seen, stop)
        )
    )
    listener.start()
    time.sleep(1.0)
    start = datetime.now(UTC)
    drive(beds, start, args, listening)
    drain_until = time.monotonic() + args.grace
    while time.monotonic() < drain_until and len(seen) < len(wanted):
        for bed in beds:
            bed.gateway.step()
            bed.gateway.flush_once()
        time.sleep(0.5)
    stop.set()
    listener.join()
    ended = time.time()
    cpu = tree_cpu_s(roots) - cpu_before
    # An alert that never came counts at the end of the run: a lower bound, so
    # a saturated server shows as slow rather than as missing data.
    latencies = [
        1000 * (seen.get(b.patient_id, ended) - onset_sample(b, start))
        for b in beds
        if b.patient_id in wanted
    ]
    for bed in beds:
        bed.gateway.close()
    hours = len(beds) * args.duration / 3600
    quiet = [b.tally.body_bytes for b in beds if b.onset_s is None]
    event = [b.tally.body_bytes for b in beds if b.onset_s is not None]
    per_hour = 3600 / args.duration
    return {
        "mode": mode,
        "bytes_per_patient_hour": tally.body_bytes / hours,
        "quiet_bytes_per_patient_hour": per_hour * sum(quiet) / max(len(quiet), 1),
        "event_bytes_per_patient_hour": per_hour * sum(event) / max(len(event), 1),
        "requests": tally.requests,
        "server_cpu_s_per_patient": cpu / len(beds),
        "alert_p50_ms": percentile(latencies, 50),
        "alert_p99_ms": percentile(latencies, 99),
        "alerts_received": f"{len(seen)}/{len(wanted)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=100.0, help="s per policy")
    parser.add_argument("--grace", type=float, default=40.0, help="s to drain")
    parser.add_argument("--sample-every", type=float, default=600.0)
    parser.add_argument("--compression", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--event-share", type=float, default=0.5, help="of sinus patients: AF onset"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    print(f"server logs and gateway stores: {workdir}")
    env = bench_environment(workdir)
    # The worker's "ready." line (which _stack waits for) is an INFO record, and
    # rpm/settings.py now configures the worker's logging too.
    env["LOG_LEVEL"] = "INFO"
    create_database(env)
    servers = build_servers(
        workdir, env, kind="daphne", count=1, worker=True, app="rpm.asgi:application"
    )
    try:
        servers.start()
        admin_token, pairs = provision(2 * args.patients, env)
        cloud = one_mode(
            "forward-all", pairs[: args.patients], servers, admin_token, workdir, args
        )
        print(json.dumps(cloud))
        edge = one_mode(
            "edge-first", pairs[args.patients :], servers, admin_token, workdir, args
        )
        print(json.dumps(edge))
    finally:
        servers.stop()
    print(
        json.dumps(
            {
                "bench": "edge",
                "bytes_ratio": round(
                    edge["bytes_per_patient_hour"] / cloud["bytes_per_patient_hour"], 3
                ),
                "server_cpu_ratio": round(
                    edge["server_cpu_s_per_patient"]
                    / cloud["server_cpu_s_per_patient"],
                    3,
                ),
                "alert_p99_ms_edge": round(edge["alert_p99_ms"]),
                "alert_p99_ms_cloud": round(cloud["alert_p99_ms"]),
            }
        )
    )


if __name__ == "__main__":
    main()
