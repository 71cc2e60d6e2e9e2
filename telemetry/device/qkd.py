"""QKD-keyed sealed uploads for the device client (optional; needs ``cryptography``).

The sealer opens a session (``POST /api/v1/security/sessions``, with an ML-KEM-768
public key for a hybrid session), fetches the session's QKD key as slave SAE
(``dec_keys``), derives the session key exactly as the server does
(security/sealing.py), and seals every attempt with the next counter. The counter is
written to the buffer before an envelope leaves, so a crash can never reuse one
(a reused counter would reuse an AES-GCM nonce).

While no session can be opened (the server answers 503: link compromised or pool
empty) it sends plain JSON over TLS, as the server's policy asks, and tries again
after the server's Retry-After. The session key lives in the device's buffer file:
protect that file as the device's secret store.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric import mlkem

from security.sealing import SessionContext, derive_session_key, seal

from .transport import Link, Sealed

log = logging.getLogger(__name__)

SESSIONS_PATH = "/api/v1/security/sessions"
SEALED_PATH = "/api/v1/telemetry/sealed-batches"
RENEW_ON = ("session-expired", "session-unknown", "replayed", "envelope-invalid")
STATE_KEY = "qkd_session"
MARGIN = timedelta(seconds=30)  # renew a little before the server would refuse


class QkdSealer:
    def __init__(self, *, device_serial: str, hybrid: bool = True) -> None:
        self._serial = device_serial
        self._hybrid = hybrid
        self._link: Link | None = None
        self._state: Any = None
        self._plain_until = 0.0

    def bind(self, link: Link, state: Any) -> None:
        self._link, self._state = link, state

    def seal(self, body: bytes) -> Sealed:
        session = self._session()
        if session is None:
            return Sealed(body, {"Content-Type": "application/json"})
        counter = session["counter"] + 1
        # Durable before use: a counter, hence a nonce, is never used twice.
        self._state.set_state(STATE_KEY, {**session, "counter": counter})
        context = SessionContext(self._serial, session["key_id"], session["session_id"])
        key = base64.b64decode(session["key"])
        envelope = {
            "session_id": session["session_id"],
            "counter": counter,
            "ciphertext": seal(key, context, counter, body),
        }
        return Sealed(
            json.dumps(envelope).encode(),
            {"Content-Type": "application/json"},
            path=SEALED_PATH,
        )

    def refused(self, response: requests.Response) -> bool:
        """A refusal about the session (not the batch): drop the session, retry."""
        if response.status_code not in (400, 409):
            return False
        try:
            kind = str(response.json().get("type", ""))
        except ValueError:
            return False
        if not kind.endswith(RENEW_ON):
            return False
        log.warning("sealed upload refused (%s): opening a new session", kind)
        self._state.set_state(STATE_KEY, None)
        return True

    # --- sessions ---

    def _session(self) -> dict | None:
        session = self._state.state(STATE_KEY)
        if session and _usable(session):
            return session
        if time.time() < self._plain_until:
            return None
        return self._open()

    def _open(self) -> dict | None:
        try:
            return self._open_session()
        except (requests.RequestException, ValueError, KeyError) as error:
            log.warning("no QKD session (%s): sending over TLS only", error)
            self._plain_until = time.time() + 30
            return None

    def _open_session(self) -> dict | None:
        link = self._require_link()
        private = mlkem.MLKEM768PrivateKey.generate() if self._hybrid else None
        body = (
            {"kem_public_key": _b64(private.public_key().public_bytes_raw())}
            if private
            else {}
        )
        answer = link.http.post(
            link.base_url + SESSIONS_PATH,
            json=body,
            headers=_auth(link),
            timeout=link.timeout_s,
        )
        if answer.status_code == 503:
            self._plain_until = time.time() + _retry_after(answer)
            log.warning("no QKD session: %s", answer.json().get("detail", ""))
            return None
        answer.raise_for_status()
        opened = answer.json()
        key = self._session_key(link, opened, private)
        session = {
            "session_id": opened["session_id"],
            "key_id": opened["key_ID"],
            "key": _b64(key),
            "expires_at": opened["expires_at"],
            "max_batches": opened["max_batches"],
            "counter": 0,
        }
        self._state.set_state(STATE_KEY, session)
        return session

    def _session_key(self, link: Link, opened: dict, private: Any) -> bytes:
        fetched = link.http.get(
            f"{link.base_url}/api/v1/keys/{opened['master_SAE_ID']}/dec_keys",
            params={"key_ID": opened["key_ID"]},
            headers=_auth(link),
            timeout=link.timeout_s,
        )
        fetched.raise_for_status()
        qkd_key = base64.b64decode(fetched.json()["keys"][0]["key"])
        context = SessionContext(self._serial, opened["key_ID"], opened["session_id"])
        if private is None:
            return derive_session_key(qkd_key, context)
        ciphertext = base64.b64decode(opened["kem_ciphertext"])
        return derive_session_key(
            qkd_key,
            context,
            kem_secret=private.decapsulate(ciphertext),
            kem_ciphertext=ciphertext,
        )

    def _require_link(self) -> Link:
        if self._link is None:
            raise ValueError("the sealer is not bound to a client")
        return self._link


def _usable(session: dict) -> bool:
    expires = datetime.fromisoformat(session["expires_at"])
    return (
        datetime.now(UTC) + MARGIN < expires
        and session["counter"] < session["max_batches"]
    )


def _auth(link: Link) -> dict[str, str]:
    return {"Authorization": f"Bearer {link.token}"}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _retry_after(response: requests.Response) -> float:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else 60.0
