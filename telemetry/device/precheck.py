"""What the server's batch contract would refuse, asked before a reading is kept.

A batch is stored whole or refused whole: one implausible reading would send
every good reading that shares its batch to the dead letters. So the device
client and the edge gateway put each reading through the server's own checks
(``telemetry.contract``) when it is added, against the device's clock, and
refuse it there, keeping nothing of it.

What cannot be checked one reading at a time stays with the server: a diastolic
pressure that is not below the systolic taken at the same time is refused with
the batch that carries both.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from telemetry import contract as c


class Refused(ValueError):
    """Readings the server's batch contract refuses; ``problems`` says which and
    why, with the paths of the batch they came in (observations, then ECG)."""

    def __init__(self, problems: list[c.Problem]) -> None:
        self.problems = problems
        super().__init__(
            "not kept: " + "; ".join(f"{p.path}: {p.message}" for p in problems)
        )


def refusals(
    items: list[tuple[str, dict]], *, now: datetime, sent_at: datetime | None = None
) -> list[c.Problem]:
    """What the server would say of these readings ("observation" or "ecg"
    payloads, as the upload carries them), sent as one batch at ``sent_at``."""
    body = {
        "batch_id": str(uuid.UUID(int=0)),
        "sent_at": (sent_at or now).isoformat(),
        "observations": [p for kind, p in items if kind == "observation"],
        "ecg": [p for kind, p in items if kind == "ecg"],
    }
    batch, problems = c.parse_batch(json.dumps(body).encode())
    return problems if batch is None else c.check_batch(batch, now=now)
