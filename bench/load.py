"""Sustained load on loopback: the highest device upload rate one stack holds with
under 0.1 % errors, held for ten minutes, then a 10-second burst at four times it.

    .venv/bin/python bench/load.py [--duration 600] [--devices 100] [--batch 60]
                                   [--servers 1] [--start-rps 4]

1. Search: open-loop steps of --step seconds, each 1.25x the last, until a step
   has 0.1 % errors or more or its p99 exceeds --slo-ms; the last good step is the
   rate the stack holds.
2. Sustained: that rate for --duration seconds (600 = ten minutes). A short step
   can pass at a rate whose queue grows slowly; the run then prints NOT HELD and
   "held": false, and the rate to report is found with --rps one step lower.
3. Burst: four times that rate for 10 s.
CPU (% of one core) and peak memory (RSS) per party are sampled from /proc. The
servers, database and Redis db are bench/_stack.py's. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from _stack import (  # isort: skip
    bench_env,
    build_servers,
    create_database,
    postgres_cpu_s,
    tree_cpu_s,
    tree_pids,
)
from ingest import Load, Tally, provision, run_load, vitals_body  # isort: skip

BURST_FACTOR, BURST_S, MAX_ERROR = 4, 10.0, 0.001


@dataclass
class Step:
    rps: float
    tally: Tally
    seconds: float
    cpu_pct: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return sum(v for k, v in self.tally.statuses.items() if isinstance(k, int))

    @property
    def error_rate(self) -> float:
        ok = self.tally.statuses[200] + self.tally.statuses[201]
        return 1 - ok / self.sent if self.sent else 1.0

    def line(self, name: str) -> str:
        cpu = " ".join(f"{k} {v:.0f}%" for k, v in self.cpu_pct.items())
        rss = " ".join(f"{k} {v:.0f} MB" for k, v in self.rss_mb.items())
        return (
            f"{name:>10}: offered {self.rps:6.1f} req/s, answered "
            f"{self.sent / self.seconds:6.1f}/s, errors {self.error_rate:.3%}, "
            f"p50 {self.tally.percentile_ms(0.5):.0f} ms, "
            f"p99 {self.tally.percentile_ms(0.99):.0f} ms | cpu {cpu} | rss {rss}"
        )


def rss_mb(roots: list[int]) -> float:
    """Resident memory of the process trees under roots, in MB."""
    total = 0
    for pid in tree_pids(roots):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Sampler(threading.Thread):
    """Peak RSS of each party while a step runs."""

    def __init__(self, parties: dict[str, list[int]]) -> None:
        super().__init__(daemon=True)
        self.parties, self.peak = parties, dict.fromkeys(parties, 0.0)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            for name, roots in self.parties.items():
                self.peak[name] = max(self.peak[name], rss_mb(roots))


def run_step(rps: float, seconds: float, ctx: dict) -> Step:
    servers, tokens = ctx["servers"], ctx["tokens"]
    parties = {"server": servers.server_pids(), "worker": servers.worker_pids()}
    interval = len(tokens) / rps
    body = vitals_body(ctx["batch"], datetime.now(UTC))
    load = Load(servers.urls(), tokens, body, seconds, interval)
    before = {k: tree_cpu_s(v) for k, v in parties.items()}
    before["postgres"] = postgres_cpu_s()
    sampler = Sampler(parties)
    sampler.start()
    tally = Tally()
    took = asyncio.run(run_load(load, ctx["tls"], tally))
    sampler.stop.set()
    sampler.join()
    after = {k: tree_cpu_s(v) for k, v in parties.items()}
    after["postgres"] = postgres_cpu_s()
    cpu = {k: 100 * (after[k] - before[k]) / took for k in after}
    return Step(rps, tally, took, cpu, sampler.peak)


def step_holds(step: Step, slo_ms: float) -> bool:
    return step.error_rate < MAX_ERROR and step.tally.percentile_ms(0.99) <= slo_ms


def search(args: argparse.Namespace, ctx: dict) -> float:
    rps, held = args.start_rps, 0.0
    while rps <= args.max_rps:
        step = run_step(rps, args.step, ctx)
        print(step.line("search"), flush=True)
        if not step_holds(step, args.slo_ms):
            break
        held, rps = rps, rps * 1.25
    return held


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--batch", type=int, default=60, help="readings per upload")
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--start-rps", type=float, default=4.0)
    parser.add_argument("--max-rps", type=float, default=2000.0)
    parser.add_argument("--step", type=float, default=20.0, help="search step s")
    parser.add_argument("--slo-ms", type=float, default=2000.0, help="p99 bound")
    parser.add_argument("--rps", type=float, default=0, help="skip the search")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rpm-load-"))
    env = bench_env(workdir, debug=False, rate="1000000/min", settings="rpm.settings")
    # The worker's "ready." line, which start() waits for, is logged at INFO.
    env["LOG_LEVEL"] = "INFO"
    os.environ.update(env)
    create_database(env)
    tokens = provision(args.devices)
    servers = build_servers(
        workdir,
        env,
        kind="daphne",
        count=args.servers,
        worker=True,
        app="rpm.asgi:application",
    )
    servers.start()
    ctx = {
        "servers": servers,
        "tokens": tokens,
        "batch": args.batch,
        "tls": ssl.create_default_context(cafile=str(servers.cert)),
    }
    try:
        rate = args.rps or search(args, ctx)
        sustained = run_step(rate, args.duration, ctx)
        print(sustained.line("sustained"), flush=True)
        # A short search step can pass at a rate whose queue only grows slowly:
        # say plainly whether the long run held it (then rerun with --rps lower).
        held = step_holds(sustained, args.slo_ms)
        print(f"sustained rate {'HELD' if held else 'NOT HELD'}", flush=True)
        burst = run_step(rate * BURST_FACTOR, BURST_S, ctx)
        print(burst.line("burst x4"), flush=True)
    finally:
        servers.stop()
    print(f"server logs: {workdir}")
    print(
        json.dumps(
            {
                "bench": "load",
                "rate_rps": round(rate, 1),
                "held": held,
                "readings_per_s": round(
                    sustained.sent / sustained.seconds * args.batch
                ),
                "error_rate": round(sustained.error_rate, 5),
                "p99_ms": round(sustained.tally.percentile_ms(0.99), 1),
                "burst_error_rate": round(burst.error_rate, 5),
                "burst_p99_ms": round(burst.tally.percentile_ms(0.99), 1),
                "duration_s": args.duration,
            }
        )
    )


if __name__ == "__main__":
    main()
