"""Our key management entity (KME) with the ETSI GS QKD 014 v1.1.1 semantics.

The emulated link fills one key pool per pair of SAEs: the ingest server (master)
with every other SAE (each device is one). ``enc_keys`` hands the master keys from
its pool and reserves them for the slave; ``dec_keys`` hands the slave the same keys
and deletes them: every key is delivered once to each end, then gone.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from patients.models import Device

from .keystore import open_at_rest, seal_at_rest
from .models import QkdKey, QkdLink, Sae

KEY_BITS = 256
KEY_BYTES = KEY_BITS // 8
MAX_KEY_PER_REQUEST = 16
MAX_SAE_ID_COUNT = 0  # no key multicast to additional slaves


class KmeError(Exception):
    """An ETSI 014 error: the HTTP status and the standard's message."""

    def __init__(self, status: int, message: str, details: list[dict] | None = None):
        super().__init__(message)
        self.status, self.message, self.details = status, message, details or []


@dataclass(frozen=True)
class DeliveredKey:
    key_id: str
    key: bytes

    def as_json(self) -> dict[str, str]:
        return {"key_ID": self.key_id, "key": base64.b64encode(self.key).decode()}


def server_sae() -> Sae:
    sae, _ = Sae.objects.get_or_create(sae_id=settings.QKD_SERVER_SAE_ID)
    return sae


def device_sae(device: Device) -> Sae:
    sae, _ = Sae.objects.get_or_create(
        device=device, defaults={"sae_id": f"device-{device.serial}"}
    )
    return sae


def default_link() -> QkdLink:
    link, _ = QkdLink.objects.get_or_create(
        name="default",
        defaults={
            "source_kme_id": settings.QKD_SOURCE_KME_ID,
            "target_kme_id": settings.QKD_TARGET_KME_ID,
            "distance_km": settings.QKD_DISTANCE_KM,
            "pulses_per_run": settings.QKD_PULSES_PER_RUN,
        },
    )
    return link


# --- filling -------------------------------------------------------------------------


def fill_pools(link: QkdLink, final_key: bytes) -> int:
    """Cut a session's final key into 256-bit keys and give each to the pool that
    needs it most. Returns how many keys were added."""
    master = server_sae().sae_id
    _register_active_devices()
    slaves = list(Sae.objects.exclude(sae_id=master).values_list("sae_id", flat=True))
    if not slaves:
        return 0
    stored = pool_sizes(master)
    added = 0
    for offset in range(0, len(final_key) - KEY_BYTES + 1, KEY_BYTES):
        slave = min(slaves, key=lambda s: stored.get(s, 0))
        if stored.get(slave, 0) >= settings.QKD_MAX_KEY_COUNT:
            break
        _store_key(link, master, slave, final_key[offset : offset + KEY_BYTES])
        stored[slave] = stored.get(slave, 0) + 1
        added += 1
    return added


def _register_active_devices() -> None:
    for device in Device.objects.filter(status=Device.Status.ACTIVE, sae__isnull=True):
        device_sae(device)


def pool_sizes(master: str) -> dict[str, int]:
    """Undelivered keys per slave SAE in the pools ``master`` is master of (pools
    with none are absent)."""
    rows = (
        QkdKey.objects.filter(master_sae=master, delivered_to_master_at__isnull=True)
        .values("slave_sae")
        .annotate(n=Count("pk"))
    )
    return {row["slave_sae"]: row["n"] for row in rows}


def _store_key(link: QkdLink, master: str, slave: str, material: bytes) -> None:
    key_id = uuid.uuid4()
    QkdKey.objects.create(
        key_id=key_id,
        link=link,
        master_sae=master,
        slave_sae=slave,
        size_bits=KEY_BITS,
        sealed_material=seal_at_rest(material, f"qkd-key:{key_id}"),
    )


# --- the three ETSI 014 calls ---


def status(*, master: Sae, slave_sae_id: str) -> dict[str, Any]:
    _require_sae(slave_sae_id)
    link = default_link()
    stored = QkdKey.objects.filter(
        master_sae=master.sae_id,
        slave_sae=slave_sae_id,
        delivered_to_master_at__isnull=True,
    ).count()
    return {
        "source_KME_ID": link.source_kme_id,
        "target_KME_ID": link.target_kme_id,
        "master_SAE_ID": master.sae_id,
        "slave_SAE_ID": slave_sae_id,
        "key_size": KEY_BITS,
        "stored_key_count": stored,
        "max_key_count": settings.QKD_MAX_KEY_COUNT,
        "max_key_per_request": MAX_KEY_PER_REQUEST,
        "max_key_size": KEY_BITS,
        "min_key_size": KEY_BITS,
        "max_SAE_ID_count": MAX_SAE_ID_COUNT,
    }


def enc_keys(
    *,
    master: Sae,
    slave_sae_id: str,
    number: int = 1,
    size: int | None = None,
    additional_slave_sae_ids: list[str] | None = None,
    extension_mandatory: list[Any] | None = None,
) -> list[DeliveredKey]:
    _check_request(number, size, additional_slave_sae_ids, extension_mandatory)
    _require_sae(slave_sae_id)
    if default_link().status == QkdLink.Status.COMPROMISED:
        raise KmeError(
            503,
            "keys are not available: the QKD link is compromised "
            "(eavesdropping suspected); key release has stopped",
        )
    with transaction.atomic():
        keys = list(
            QkdKey.objects.select_for_update(skip_locked=True)
            .filter(
                master_sae=master.sae_id,
                slave_sae=slave_sae_id,
                delivered_to_master_at__isnull=True,
            )
            .order_by("created_at", "pk")[:number]
        )
        if len(keys) < number:
            raise KmeError(
                503,
                "keys are exhausted: the pool holds fewer keys than "
                "requested; retry after the next QKD run",
            )
        QkdKey.objects.filter(pk__in=[k.pk for k in keys]).update(
            delivered_to_master_at=timezone.now()
        )
    return [_delivered(k) for k in keys]


def dec_keys(
    *, slave: Sae, master_sae_id: str, key_ids: list[str]
) -> list[DeliveredKey]:
    wanted = _parse_key_ids(key_ids)
    with transaction.atomic():
        keys = list(
            QkdKey.objects.select_for_update().filter(
                key_id__in=wanted,
                master_sae=master_sae_id,
                delivered_to_master_at__isnull=False,
            )
        )
        if len(keys) != len(wanted):
            raise KmeError(400, "one or more keys specified are not found on KME")
        if any(k.slave_sae != slave.sae_id for k in keys):
            raise KmeError(401, "")  # not named as the slave in enc_keys
        by_id = {k.key_id: k for k in keys}
        delivered = [_delivered(by_id[key_id]) for key_id in wanted]  # as asked
        QkdKey.objects.filter(pk__in=[k.pk for k in keys]).delete()
    return delivered


def _delivered(key: QkdKey) -> DeliveredKey:
    material = open_at_rest(key.sealed_material, f"qkd-key:{key.key_id}")
    return DeliveredKey(str(key.key_id), material)


def _check_request(
    number: int,
    size: int | None,
    additional: list[str] | None,
    mandatory: list[Any] | None,
) -> None:
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise KmeError(400, "number shall be a positive integer")
    if number > MAX_KEY_PER_REQUEST:
        raise KmeError(
            400, f"number shall be at most max_key_per_request ({MAX_KEY_PER_REQUEST})"
        )
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size % 8:
            raise KmeError(400, "size shall be a multiple of 8")
        if size != KEY_BITS:
            raise KmeError(
                400,
                f"size shall be {KEY_BITS} (min_key_size and max_key_size of this KME)",
            )
    if additional:
        raise KmeError(
            400,
            "additional_slave_SAE_IDs are not supported "
            f"(max_SAE_ID_count is {MAX_SAE_ID_COUNT})",
        )
    if mandatory:
        raise KmeError(400, "not all extension_mandatory parameters are supported")


def _require_sae(sae_id: str) -> None:
    if not Sae.objects.filter(sae_id=sae_id).exists():
        raise KmeError(400, f"unknown SAE {sae_id!r}")


def _parse_key_ids(key_ids: list[str]) -> list[uuid.UUID]:
    if not key_ids:
        raise KmeError(400, "key_IDs shall name at least one key")
    try:
        return [uuid.UUID(str(k)) for k in key_ids]
    except ValueError:
        raise KmeError(400, "one or more keys specified are not found on KME") from None
