"""HTTPS to the server: CA-verified, or pinned to one certificate's SHA-256.

Pinning uses urllib3's ``assert_fingerprint``: after the TLS handshake and before a
byte of the request is written, the SHA-256 digest of the peer's DER certificate
must equal the pin, otherwise the connection fails with an SSLError. With a pin and
no CA file the chain is not checked (a self-signed server certificate is the usual
case); with both, both must hold.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


def normalise_pin(pin: str) -> str:
    """A SHA-256 fingerprint as 64 lower-case hex digits (colons allowed in)."""
    digits = pin.replace(":", "").strip().lower()
    if not FINGERPRINT.match(digits):
        raise ValueError("pin_sha256 must be a SHA-256 digest: 64 hex digits")
    return digits


def certificate_sha256(pem: str) -> str:
    """The pin of a PEM certificate: SHA-256 of its DER encoding, in hex."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


class PinnedAdapter(HTTPAdapter):
    def __init__(self, pin_sha256: str, **kwargs: Any) -> None:
        self._pin = normalise_pin(pin_sha256)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_fingerprint"] = self._pin
        super().init_poolmanager(*args, **kwargs)


@dataclass(frozen=True)
class Sealed:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    path: str | None = None  # None: the plain upload endpoint


@dataclass(frozen=True)
class Link:
    """What a sealer needs to talk to the server besides the upload itself."""

    http: requests.Session
    base_url: str
    token: str
    timeout_s: float


class Sealer(Protocol):
    """Turns the JSON body of one attempt into what goes on the wire.

    ``bind`` gives it the client's connection and state store; ``refused`` lets it
    claim a refusal it can fix itself (a session to renew): the client then retries
    the batch instead of giving it up.
    """

    def bind(self, link: Link, state: Any) -> None: ...

    def seal(self, body: bytes) -> Sealed: ...

    def refused(self, response: requests.Response) -> bool: ...


class PlainJson:
    """No sealing: the body as it is, over TLS."""

    def bind(self, link: Link, state: Any) -> None:
        return None

    def seal(self, body: bytes) -> Sealed:
        return Sealed(body, {"Content-Type": "application/json"})

    def refused(self, response: requests.Response) -> bool:
        return False


def https_session(ca_file: str | None, pin_sha256: str | None) -> requests.Session:
    session = requests.Session()
    # A device is configured explicitly: no proxies or CA bundles from the
    # environment (REQUESTS_CA_BUNDLE would silently override verify).
    session.trust_env = False
    if pin_sha256:
        session.mount("https://", PinnedAdapter(pin_sha256))
        session.verify = ca_file or False
    else:
        session.verify = ca_file or True
    return session
