"""What happens to a stored batch: analysis and scoring, then it is marked done.

Every step is idempotent (it checks what is already done), so a task that runs
twice, or a batch queued again by the sweep, changes nothing the second time.
"""

from __future__ import annotations

from django.utils import timezone

from .models import Batch


def process_batch(batch_pk: int) -> bool:
    """Process one batch; False when there was nothing to do."""
    batch = Batch.objects.filter(pk=batch_pk, state=Batch.State.PENDING).first()
    if batch is None:
        return False
    done = Batch.objects.filter(pk=batch_pk, state=Batch.State.PENDING).update(
        state=Batch.State.PROCESSED, processed_at=timezone.now()
    )
    return bool(done)
