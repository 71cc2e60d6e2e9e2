"""Run one emulated QKD session and print its report (never key material)."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from security.qkd import LinkParams, SessionConfig, SessionResult, run_session


class Command(BaseCommand):
    help = "Emulate a decoy-state BB84 link and post-process it into a key."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--distance-km", type=float, default=50.0)
        parser.add_argument("--pulses", type=int, default=100_000_000)
        parser.add_argument(
            "--eve", type=float, default=0.0, help="intercept-resend fraction"
        )
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--sigmas",
            type=float,
            default=SessionConfig.sigmas,
            help="standard deviations for the decoy parameter estimates",
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            params = LinkParams(
                distance_km=options["distance_km"], eve_fraction=options["eve"]
            )
            config = SessionConfig(sigmas=options["sigmas"])
            result = run_session(params, options["pulses"], options["seed"], config)
        except ValueError as error:
            raise CommandError(str(error)) from error
        report = result.report()
        if options["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self.stdout.write(_summary(result, report))


def _summary(result: SessionResult, report: dict[str, Any]) -> str:
    params = result.params
    ec = report["ec_efficiency"]
    lines = [
        f"distance {params.distance_km:g} km, "
        f"transmittance {report['transmittance']:.3e}, "
        f"eavesdropper on {params.eve_fraction:.0%} of pulses",
        f"pulses {result.pulses:,}, detections {report['detections']:,}, "
        f"signal gain {report['gain']:.4e}",
        f"sifted signal bits {report['sifted_bits']:,}, QBER {report['qber']:.2%} "
        f"(sample estimate {report['qber_estimate']:.2%} on {report['sample_bits']:,})",
        f"Cascade leaked {report['ec_leaked_bits']:,} bits, efficiency "
        + (f"{ec:.3f}" if ec else "n/a"),
        f"secure rate (GLLP, decoy bounds at {report['estimation_sigmas']:g} sigma) "
        f"{report['key_rate_per_pulse']:.3e} per signal pulse; "
        f"theory {report['theory_key_rate_per_pulse']:.3e}; "
        f"PLOB bound {report['plob_bound_per_pulse']:.3e}",
        f"seed paper's K = Q[1-h(e)] {report['seed_formula_rate']:.3e} "
        "(comparison only, never used to release keys)",
    ]
    if result.aborted:
        lines.append(f"ABORTED: {result.abort_reason}; no key released")
    else:
        lines.append(
            f"final key {result.final_key_bits:,} bits "
            f"(epsilon_PA {report['epsilon_pa']:g}, "
            f"epsilon_verify {report['epsilon_verify']:.1e})"
        )
    return "\n".join(lines)
