"""Loaded into the integration stack's real Celery worker (``--include``), inert
unless a test asks: lets a test kill a pool child while it holds a batch.

A test writes ``$RPM_VAR_DIR/hold-next-batch``; the next ``process_batch`` to
start takes that file, writes its child's pid to ``held.pid`` and sleeps, so the
test can SIGKILL that child mid-task. A test that writes a batch ID to
``poison-batch`` makes every child that takes that batch kill itself, as a batch
that crashes native code would. Every start of ``process_batch`` (held or not)
appends the queue it came from to ``deliveries.log``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from celery.signals import task_prerun

HOLD_S = 60.0


def _var_dir() -> Path:
    return Path(os.environ["RPM_VAR_DIR"])


@task_prerun.connect
def _act_as_asked(sender=None, task_id=None, task=None, args=None, **_):
    if sender is None or sender.name != "telemetry.tasks.process_batch":
        return
    var = _var_dir()
    var.mkdir(parents=True, exist_ok=True)
    routing_key = (task.request.delivery_info or {}).get("routing_key")
    with (var / "deliveries.log").open("a") as log:
        log.write(f"{args[0]} {routing_key}\n")
    if _is_poison(var / "poison-batch", args[0]):
        os.kill(os.getpid(), signal.SIGKILL)
    try:
        (var / "hold-next-batch").unlink()
    except FileNotFoundError:
        return
    (var / "held.pid").write_text(str(os.getpid()))
    time.sleep(HOLD_S)


def _is_poison(marker: Path, batch_pk: int) -> bool:
    try:
        poison = marker.read_text().strip()
    except FileNotFoundError:
        return False
    from telemetry.models import Batch

    found = Batch.objects.filter(pk=batch_pk).values_list("batch_id", flat=True)
    return str(found.first()) == poison
