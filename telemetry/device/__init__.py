"""The device client a device maker embeds: durable buffer, batched HTTPS uploads,
exactly-once delivery. See docs/device-client.md.

Depends on ``requests`` and the standard library only (no Django), so it can be
lifted out of this repository as it is.
"""

from __future__ import annotations

from .buffer import Limits, Pending
from .client import DeadLetter, DeviceClient
from .transport import PlainJson, Sealed, Sealer, certificate_sha256
from .upload import Backoff, FlushReport

__all__ = [
    "Backoff",
    "DeadLetter",
    "DeviceClient",
    "FlushReport",
    "Limits",
    "Pending",
    "PlainJson",
    "Sealed",
    "Sealer",
    "certificate_sha256",
]
