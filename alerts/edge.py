"""Alerts found on a gateway, and the server's second opinion on the same data.

A gateway (telemetry/edge/) runs the same rules on every reading and every ECG
window of its patient and sends the outcomes, in data-time order, before the
readings they came from. They enter the same engine (alerts/services.py): one open
alert per subject and kind, so an edge finding and a server finding for the same
condition make one alert. Edge findings carry ``evidence["source"] = "edge"``.

The server also analyses whatever raw data the gateway forwards. That is a sample
(event windows, periodic strips, fetched strips), evaluated after the gateway's
own outcomes for it have been applied, so on that data:

- a server **Clear** of a kind the gateway evaluates is dropped. Only the gateway
  saw every window; a normal strip in the sample does not prove the condition
  ended, and the gateway has sent its own Clear for that strip if it was one;
- a server **Finding** the gateway already reported (same kind, same data time) is
  dropped: replaying it after the gateway's Clear would raise a duplicate alert;
- any other server finding stands (a second opinion that disagrees, for instance
  a newer analysis): the engine updates the open alert or raises one.
"""

from __future__ import annotations

from collections.abc import Iterable

from patients.models import Device, Patient
from telemetry.edge_contract import DEVICE_KINDS, EDGE_KINDS
from telemetry.models import Batch, EdgeOutcome

from .rules import Clear, Finding, Outcome
from .services import Subject, apply_outcomes

EDGE_SOURCE = "edge"


def tagged(finding: Finding, gateway: Device) -> Finding:
    evidence = {**finding.evidence, "source": EDGE_SOURCE, "gateway": gateway.serial}
    return Finding(
        finding.kind, finding.priority, finding.at, finding.message, evidence
    )


def apply_edge_outcomes(
    *, gateway: Device, patient: Patient, outcomes: Iterable[Outcome]
) -> None:
    """Feed a gateway's outcomes to the engine, on the subjects the server uses for
    the same kinds (ECG signal quality belongs to the device that records it)."""
    device_side: list[Outcome] = []
    patient_side: list[Outcome] = []
    for outcome in outcomes:
        if isinstance(outcome, Finding):
            outcome = tagged(outcome, gateway)
        (device_side if outcome.kind in DEVICE_KINDS else patient_side).append(outcome)
    apply_outcomes(subject=Subject.of_device(gateway, patient), outcomes=device_side)
    if patient.status == Patient.Status.ENROLLED:  # paused: stored, not alarmed
        apply_outcomes(subject=Subject.of_patient(patient), outcomes=patient_side)


def second_opinion(batch: Batch, outcomes: list[Outcome]) -> list[Outcome]:
    """What the server's own evaluation of ``batch`` may add (see the module
    docstring); unchanged for batches that did not come through a gateway."""
    if not hasattr(batch, "edge"):
        return outcomes
    reported = set(
        EdgeOutcome.objects.filter(
            patient_id=batch.patient_id,
            finding=True,
            kind__in={o.kind for o in outcomes},
            at__in={o.at for o in outcomes},
        ).values_list("kind", "at")
    )
    return [o for o in outcomes if _adds(o, reported)]


def _adds(outcome: Outcome, reported: set) -> bool:
    if outcome.kind not in EDGE_KINDS:
        return True  # battery, clock: only the server evaluates them
    if isinstance(outcome, Clear):
        return False
    return (outcome.kind, outcome.at) not in reported
