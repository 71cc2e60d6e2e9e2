"""Emulated decoy-state BB84 link and its post-processing (pure NumPy, no Django).

Modules: ``channel`` (physical parameters), ``emulator`` (pulse-by-pulse link),
``decoy`` (theory, decoy bounds, key rates), ``estimation`` (parameter
estimation), ``cascade`` (error correction), ``privacy`` (Toeplitz hashing,
verification, key length) and ``session`` (one run into a frozen result).
"""

from __future__ import annotations

from .channel import LinkParams
from .decoy import KeyRateSeries, key_rate_series
from .session import SessionConfig, SessionResult, run_session

__all__ = [
    "KeyRateSeries",
    "LinkParams",
    "SessionConfig",
    "SessionResult",
    "key_rate_series",
    "run_session",
]
