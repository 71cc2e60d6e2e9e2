"""Key material at rest: AES-256-GCM under a key-encryption key.

The KEK is KEY_ENCRYPTION_KEY (base64, 32 bytes) when set, otherwise derived from
SECRET_KEY with HKDF. Each sealed blob binds the row it belongs to (its label), so a
blob copied into another row does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def _kek() -> bytes:
    configured = getattr(settings, "KEY_ENCRYPTION_KEY", "")
    if configured:
        key = base64.b64decode(configured)
        if len(key) != 32:
            raise ValueError("KEY_ENCRYPTION_KEY must be 32 bytes, base64-encoded")
        return key
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"rpm key material at rest v1",
    )
    return hkdf.derive(settings.SECRET_KEY.encode())


def seal_at_rest(material: bytes, label: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_kek()).encrypt(nonce, material, label.encode())


def open_at_rest(blob: bytes, label: str) -> bytes:
    blob = bytes(blob)
    return AESGCM(_kek()).decrypt(blob[:12], blob[12:], label.encode())
