"""The device client a device maker embeds: durable buffer, batched HTTPS uploads,
exactly-once delivery. See docs/device-client.md.

Depends on ``requests``, ``pydantic`` and ``telemetry/contract.py`` (the
server's own upload checks, which ``add_*`` runs on every reading; no Django), so
it can be lifted out of this repository with that one file.
"""

from __future__ import annotations

from .buffer import Limits, Pending
from .client import DeadLetter, DeviceClient
from .precheck import Refused
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
    "Refused",
    "Sealed",
    "Sealer",
    "certificate_sha256",
]
