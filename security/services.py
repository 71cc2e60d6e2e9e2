"""Security workflows: run the QKD link, open device sessions, open sealed uploads.

Policy while the link is compromised (QBER over the threshold: eavesdropping
suspected): no key is released, so no new session opens (503 with the policy in
the message). Sessions opened before stay valid until they expire, since their keys
came from runs that passed their checks. Devices keep uploading over TLS with
their device token (POST /api/v1/telemetry/batches): patient data must keep
flowing, and QKD sealing is a layer on top of TLS, not instead of it.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from alerts.rules import Clear, Finding
from alerts.services import Subject, apply_outcomes
from patients.models import Device

from . import kme
from .audit import record_event
from .keystore import open_at_rest, seal_at_rest
from .models import DeviceSession, QkdLink, QkdRun
from .qkd import LinkParams, SessionConfig, run_session
from .sealing import EnvelopeError, SessionContext, derive_session_key, kem_encapsulate
from .sealing import open_envelope as open_sealed_bytes

POLICY = (
    "devices keep uploading over TLS with their device token until the link "
    "recovers; sessions opened before stay valid until they expire"
)


QBER_ABORT = SessionConfig().qber_abort


class SessionUnavailable(Exception):
    """No session can be opened now (link compromised, pool empty)."""


class SealedRejected(Exception):
    def __init__(self, status: int, kind: str, detail: str):
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail


# --- the link -------------------------------------------------------------------------


def run_link(link: QkdLink, *, seed: int | None = None) -> QkdRun:
    params = LinkParams(distance_km=link.distance_km, eve_fraction=link.eve_fraction)
    result = run_session(params, link.pulses_per_run, seed)
    eavesdropping = result.aborted and result.qber_estimate > result.config.qber_abort
    # The keys, the run that made them, the link's status and its alerts commit
    # together: a worker killed half-way leaves no keys without their run, and no
    # compromised link without its alarm.
    with transaction.atomic():
        added = 0 if result.aborted else kme.fill_pools(link, result.final_key)
        run = QkdRun.objects.create(
            link=link,
            qber=result.signal.qber,
            key_rate_per_pulse=result.key_rate_per_pulse,
            final_key_bits=result.final_key_bits,
            keys_added=added,
            aborted=result.aborted,
            abort_reason=result.abort_reason[:300],
            report=result.report(),
        )
        _update_link_status(link, run, eavesdropping)
    return run


def _update_link_status(link: QkdLink, run: QkdRun, eavesdropping: bool) -> None:
    subject = Subject.of_qkd_link(link.name)
    if eavesdropping:
        if link.status != QkdLink.Status.COMPROMISED:
            QkdLink.objects.filter(pk=link.pk).update(
                status=QkdLink.Status.COMPROMISED, compromised_since=run.at
            )
            record_event(
                action="qkd.link_compromised",
                outcome="failure",
                details={"link": link.name, "qber": run.qber},
            )
        apply_outcomes(
            subject=subject,
            outcomes=[
                Finding(
                    "qkd_eavesdropping",
                    "high",
                    run.at,
                    f"QBER {run.qber:.1%} over the {QBER_ABORT:.0%} threshold on link "
                    f"{link.name}: "
                    f"key release stopped; {POLICY}",
                    {
                        "qber": run.qber,
                        "rule": "QBER abort threshold",
                        "threshold": QBER_ABORT,
                    },
                )
            ],
        )
        return
    if link.status == QkdLink.Status.COMPROMISED:
        QkdLink.objects.filter(pk=link.pk).update(
            status=QkdLink.Status.UP, compromised_since=None
        )
        record_event(action="qkd.link_recovered", details={"link": link.name})
    apply_outcomes(subject=subject, outcomes=[Clear("qkd_eavesdropping", run.at)])
    if run.keys_added:
        apply_outcomes(subject=subject, outcomes=[Clear("qkd_pool_exhausted", run.at)])


def pool_exhausted(link: QkdLink, slave_sae_id: str) -> None:
    apply_outcomes(
        subject=Subject.of_qkd_link(link.name),
        outcomes=[
            Finding(
                "qkd_pool_exhausted",
                "medium",
                timezone.now(),
                f"no QKD key left for {slave_sae_id}: "
                "sessions cannot open until the next run",
                {"slave_SAE_ID": slave_sae_id, "rule": "empty key pool"},
            )
        ],
    )


# --- sessions -----------------------------------------------------------------------


@dataclass(frozen=True)
class OpenedSession:
    session: DeviceSession
    kem_ciphertext: bytes


def open_session(
    *, device: Device, kem_public_key: bytes | None = None, request: Any = None
) -> OpenedSession:
    """The server, as master SAE, takes a key for the device from the pool and
    derives the session key; the device fetches the same key with dec_keys."""
    # Encapsulate first: a malformed public key must not use up a QKD key.
    kem_secret, kem_ciphertext = (
        kem_encapsulate(kem_public_key) if kem_public_key else (b"", b"")
    )
    link = kme.default_link()
    slave = kme.device_sae(device)
    try:
        # The key leaves the pool only with the session that names it (and its
        # audit row): a process killed in between must not strand it.
        with transaction.atomic():
            [key] = kme.enc_keys(
                master=kme.server_sae(), slave_sae_id=slave.sae_id, number=1
            )
            session = _new_session(device, key, kem_secret, kem_ciphertext, request)
    except kme.KmeError as error:
        if "exhausted" in error.message:
            pool_exhausted(link, slave.sae_id)
        raise SessionUnavailable(f"{error.message}; {POLICY}") from error
    return OpenedSession(session, kem_ciphertext)


def _new_session(
    device: Device,
    key: kme.DeliveredKey,
    kem_secret: bytes,
    kem_ciphertext: bytes,
    request: Any,
) -> DeviceSession:
    session_id = uuid.uuid4()
    context = SessionContext(device.serial, key.key_id, str(session_id))
    session_key = derive_session_key(
        key.key, context, kem_secret=kem_secret, kem_ciphertext=kem_ciphertext
    )
    session = DeviceSession.objects.create(
        session_id=session_id,
        device=device,
        key_id=key.key_id,
        hybrid=bool(kem_ciphertext),
        sealed_session_key=seal_at_rest(session_key, f"session:{session_id}"),
        expires_at=timezone.now() + timedelta(seconds=settings.QKD_SESSION_TTL_S),
        max_batches=settings.QKD_SESSION_MAX_BATCHES,
    )
    record_event(
        action="qkd.session_opened",
        device=device,
        obj=session,
        request=request,
        details={"key_ID": key.key_id, "hybrid": session.hybrid},
    )
    return session


def session_answer(opened: OpenedSession) -> dict[str, Any]:
    session = opened.session
    answer = {
        "session_id": str(session.session_id),
        "key_ID": str(session.key_id),
        "master_SAE_ID": settings.QKD_SERVER_SAE_ID,
        "expires_at": session.expires_at.isoformat(),
        "max_batches": session.max_batches,
        "hybrid": session.hybrid,
    }
    if opened.kem_ciphertext:
        answer["kem_ciphertext"] = base64.b64encode(opened.kem_ciphertext).decode()
    return answer


def open_sealed(
    *, device: Device, session_id: uuid.UUID, counter: int, ciphertext: str
) -> bytes:
    """Check and open a sealed batch inside the caller's transaction: the session
    row stays locked and its counter advances only if the caller commits."""
    session = (
        DeviceSession.objects.select_for_update()
        .filter(session_id=session_id, device=device)
        .first()
    )
    if session is None:
        raise SealedRejected(
            409,
            "session-unknown",
            "unknown session for this device: open a new session",
        )
    _check_session(session, counter)
    key = open_at_rest(session.sealed_session_key, f"session:{session.session_id}")
    context = SessionContext(
        device.serial, str(session.key_id), str(session.session_id)
    )
    try:
        plaintext = open_sealed_bytes(key, context, counter, ciphertext)
    except EnvelopeError as error:
        raise SealedRejected(400, "envelope-invalid", str(error)) from error
    session.last_counter = counter
    session.batches += 1
    session.save(update_fields=["last_counter", "batches"])
    return plaintext


def _check_session(session: DeviceSession, counter: int) -> None:
    if session.expires_at <= timezone.now() or session.batches >= session.max_batches:
        raise SealedRejected(
            409,
            "session-expired",
            "the session has expired or reached its batch limit: open a new session",
        )
    if counter <= session.last_counter:
        raise SealedRejected(
            409,
            "replayed",
            f"counter {counter} is not above the last accepted "
            f"({session.last_counter}): a replayed or stale envelope",
        )


def report_integrity_failure(
    *, device: Device, session_id: uuid.UUID, why: str
) -> None:
    """Record a rejected envelope (after the request's transaction rolled back):
    the audit row and the alarm commit together."""
    with transaction.atomic():
        record_event(
            action="qkd.envelope_rejected",
            device=device,
            outcome="denied",
            details={"reason": why, "session_id": str(session_id)},
        )
        if device.patient_id:
            apply_outcomes(
                subject=Subject.of_device(device, device.patient),
                outcomes=[
                    Finding(
                        "integrity_failure",
                        "medium",
                        timezone.now(),
                        "a sealed upload failed its integrity check: tampered in "
                        "transit, or sealed with another key",
                        {
                            "rule": "AES-GCM authentication tag",
                            "session": str(session_id),
                        },
                    )
                ],
            )


def record_key_event(
    action: str, request: Any, keys: list[kme.DeliveredKey], peer_sae_id: str
) -> None:
    sae = request.user
    record_event(
        action=action,
        device=sae.device,
        request=request,
        details={
            "sae": sae.sae_id,
            "peer_SAE_ID": peer_sae_id,
            "key_IDs": [k.key_id for k in keys],
        },
    )
