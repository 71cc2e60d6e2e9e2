"""Bearer credentials: random tokens shown once and stored only as a hash.

A token carries 256 bits from the operating system's CSPRNG. SHA-256 of such a
token is enough to store it: there is nothing to brute-force, so a slow password
hash would only slow down every upload.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

DEVICE_PREFIX = "rpmd_"
CLINICIAN_PREFIX = "rpmc_"


@dataclass(frozen=True)
class NewToken:
    raw: str
    digest: str


def issue_token(prefix: str) -> NewToken:
    raw = prefix + secrets.token_urlsafe(32)
    return NewToken(raw=raw, digest=token_digest(raw))


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
