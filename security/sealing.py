"""Session keys and sealed envelopes for device uploads. Pure: no Django.

Both ends run this module: the server when it opens a session and when a sealed
batch arrives, the device client when it seals one.

- Session key: HKDF-SHA256 over the QKD key (and, for a hybrid session, an ML-KEM-768
  shared secret after it, concatenated as in ETSI TS 103 744's CatKDF), with the
  device, the key_ID, the session and the purpose bound into ``info``.
- Envelope: AES-256-GCM. The 96-bit nonce is the session's counter (4 zero bytes,
  then the counter as 8 bytes big-endian): the counter must strictly increase, so no
  nonce repeats under a key. The associated data binds device, session and counter,
  so an envelope cannot be moved to another device, session or position.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PURPOSE = b"rpm telemetry upload v1"
KEY_BYTES = 32
MAX_COUNTER = 2**64 - 1


class EnvelopeError(ValueError):
    """The envelope does not open: tampered, wrong key, device, session or counter."""


@dataclass(frozen=True)
class SessionContext:
    device_serial: str
    key_id: str
    session_id: str

    def info(self, kem_ciphertext: bytes = b"") -> bytes:
        # Length-prefixed fields, then the hash of the public KEM message (CatKDF).
        parts = [
            PURPOSE,
            self.device_serial.encode(),
            self.key_id.encode(),
            self.session_id.encode(),
        ]
        prefixed = b"".join(struct.pack(">I", len(p)) + p for p in parts)
        return prefixed + hashlib.sha256(kem_ciphertext).digest()


def derive_session_key(
    qkd_key: bytes,
    context: SessionContext,
    *,
    kem_secret: bytes = b"",
    kem_ciphertext: bytes = b"",
) -> bytes:
    if len(qkd_key) < KEY_BYTES:
        raise ValueError("the QKD key must be at least 256 bits")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_BYTES,
        salt=None,
        info=context.info(kem_ciphertext),
    )
    return hkdf.derive(qkd_key + kem_secret)


def kem_encapsulate(public_key_raw: bytes) -> tuple[bytes, bytes]:
    """Server side of the hybrid: (shared secret, ciphertext for the device)."""
    public = mlkem.MLKEM768PublicKey.from_public_bytes(public_key_raw)
    return public.encapsulate()


def nonce_for(counter: int) -> bytes:
    if not 1 <= counter <= MAX_COUNTER:
        raise ValueError("the counter runs from 1 to 2**64 - 1")
    return b"\x00\x00\x00\x00" + counter.to_bytes(8, "big")


def associated_data(context: SessionContext, counter: int) -> bytes:
    return (
        f"rpm-sealed-v1|{context.device_serial}|{context.session_id}|{counter}".encode()
    )


def seal(key: bytes, context: SessionContext, counter: int, plaintext: bytes) -> str:
    sealed = AESGCM(key).encrypt(
        nonce_for(counter), plaintext, associated_data(context, counter)
    )
    return base64.b64encode(sealed).decode()


def open_envelope(
    key: bytes, context: SessionContext, counter: int, ciphertext_b64: str
) -> bytes:
    try:
        sealed = base64.b64decode(ciphertext_b64, validate=True)
    except ValueError as error:
        raise EnvelopeError("ciphertext is not valid base64") from error
    try:
        return AESGCM(key).decrypt(
            nonce_for(counter), sealed, associated_data(context, counter)
        )
    except InvalidTag as error:
        raise EnvelopeError(
            "the envelope does not authenticate: tampered, or sealed "
            "for another device, session or counter"
        ) from error
