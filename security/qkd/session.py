"""One QKD session: emulate the link, post-process, release a key or abort.

Chain: sifting (in the emulator) -> decoy-state bounds from the announced decoy
and vacuum data -> disclosed QBER sample, abort above the threshold -> Cascade,
frame by frame -> universal-hash verification -> key length from the bound ->
modified Toeplitz privacy amplification. A session that
aborts releases nothing. The seed paper's formula K = Q [1 - h(e)] is reported
next to the secure rate for comparison; the released length never depends on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .cascade import cascade
from .channel import INTENSITY_NAMES, SIGNAL, LinkParams
from .decoy import (
    THEORY_EC_EFFICIENCY,
    DecoyBounds,
    Observed,
    binary_entropy,
    plob_bound,
    secure_rate,
    seed_formula_rate,
    theoretical_observed,
    theory_rate,
)
from .emulator import IntensityCounts, LinkRecord, emulate
from .estimation import Estimates, estimate, split_sample
from .privacy import (
    EPSILON_PA,
    EPSILON_VERIFY,
    VERIFY_TAG_BITS,
    modified_toeplitz_hash,
    random_bits,
    secure_length,
    verification_tag,
)

CASCADE_FRAME_BITS = 100_000


@dataclass(frozen=True)
class SessionConfig:
    """Protocol choices that are not physics.

    ``qber_abort`` 0.11: above it one-way BB84 has no key even with perfect error
    correction (1 - 2 h(e) = 0), so Cascade would only leak. ``sigmas`` 5: each
    estimated gain or error rate is taken at the conservative end of a
    5-standard-deviation interval (see ``estimation``).
    """

    sample_fraction: float = 0.1
    qber_abort: float = 0.11
    sigmas: float = 5.0
    epsilon_pa: float = EPSILON_PA
    min_sifted_bits: int = 1000


@dataclass(frozen=True, eq=False)
class SessionResult:
    """Everything a session measured and decided. ``final_key`` is empty when
    the session aborted; it is excluded from repr and from ``report()``."""

    params: LinkParams
    config: SessionConfig
    pulses: int
    seed: int | None
    counts: tuple[IntensityCounts, ...]
    qber_estimate: float = 0.0
    sample_bits: int = 0
    estimates: Estimates | None = None
    ec_leaked_bits: int = 0
    ec_efficiency: float | None = None
    final_key_bits: int = 0
    aborted: bool = False
    abort_reason: str = ""
    final_key: bytes = field(default=b"", repr=False)

    @property
    def signal(self) -> IntensityCounts:
        return self.counts[SIGNAL]

    @property
    def key_rate_per_pulse(self) -> float:
        """Secure GLLP rate from the decoy estimates, per signal pulse."""
        if self.estimates is None:
            return 0.0
        f = self.ec_efficiency or THEORY_EC_EFFICIENCY
        observed = Observed(self.signal.gain, self.signal.qber)
        return secure_rate(self.estimates.bounds, observed, f)

    @property
    def seed_formula_rate(self) -> float:
        return seed_formula_rate(Observed(self.signal.gain, self.signal.qber))

    def report(self) -> dict[str, object]:
        """JSON-ready summary; never contains key material."""
        return _report(self)


@dataclass
class _Progress:
    """What post-processing has learnt so far; copied into the result even on
    abort, so a report shows how far the session got."""

    qber_estimate: float = 0.0
    sample_bits: int = 0
    sample_errors: int = 0
    estimates: Estimates | None = None
    ec_leaked_bits: int = 0
    ec_efficiency: float | None = None

    def result_fields(self) -> dict[str, object]:
        return {
            "qber_estimate": self.qber_estimate,
            "sample_bits": self.sample_bits,
            "estimates": self.estimates,
            "ec_leaked_bits": self.ec_leaked_bits,
            "ec_efficiency": self.ec_efficiency,
        }


class _AbortError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def run_session(
    params: LinkParams,
    pulses: int,
    seed: int | None = None,
    config: SessionConfig | None = None,
) -> SessionResult:
    """Emulate ``pulses`` pulses and post-process them into a key (or abort).

    With ``seed`` the whole run, keys included, is reproducible and therefore
    not secret. Without it the emulation is seeded from OS entropy, the raw key
    is whitened with a ``secrets`` pad (``_whiten``) and the verification and
    privacy-amplification seeds come from ``secrets``.
    """
    config = config or SessionConfig()
    rng = np.random.default_rng(seed)
    # Separate stream for key-shaping randomness, drawn only for seeded runs.
    key_rng = np.random.default_rng([seed, 1]) if seed is not None else None
    record = _whiten(emulate(params, pulses, rng), key_rng)
    base = SessionResult(params, config, pulses, seed, record.counts)
    progress = _Progress()
    try:
        length, key = _post_process(record, config, progress, rng, key_rng)
    except _AbortError as abort:
        fields = progress.result_fields()
        return replace(base, aborted=True, abort_reason=abort.reason, **fields)
    fields = progress.result_fields()
    return replace(base, final_key_bits=length, final_key=key, **fields)


def _post_process(
    record: LinkRecord,
    config: SessionConfig,
    progress: _Progress,
    rng: np.random.Generator,
    key_rng: np.random.Generator | None,
) -> tuple[int, bytes]:
    # Decoy and vacuum outcomes are announced in full, so their bounds come first
    # and are reported even when the QBER check below aborts.
    progress.estimates = estimate(record.params, record.counts, config.sigmas)
    alice, bob = _estimate_qber(record, config, progress, rng)
    if not progress.estimates.bounds.usable:
        raise _AbortError("decoy bounds leave no single-photon yield")
    corrected, leaked, flipped = _reconcile(alice, bob, progress.qber_estimate, rng)
    progress.ec_leaked_bits = leaked
    if flipped:
        progress.ec_efficiency = leaked / (
            alice.size * binary_entropy(flipped / alice.size)
        )
    _verify(alice, corrected, key_rng)
    # After verification both sides know every error position, sample included.
    signal_errors = progress.sample_errors + flipped
    estimates = estimate(record.params, record.counts, config.sigmas, signal_errors)
    progress.estimates = estimates
    n1 = alice.size * estimates.single_photon_fraction
    length = secure_length(
        n1,
        estimates.bounds.e1_upper,
        leaked,
        EPSILON_VERIFY,
        config.epsilon_pa,
    )
    length -= length % 8  # whole bytes for the key pool
    if length <= 0:
        raise _AbortError("privacy-amplification bound leaves no key")
    return length, _amplify(corrected, length, key_rng)


def expected_key_bits(
    params: LinkParams,
    pulses: int,
    config: SessionConfig | None = None,
    ec_efficiency: float = 1.1,
) -> int:
    """The key a session of ``pulses`` would release if every count came out at
    its expected value: the same estimation and length formula as a run, fed
    the channel model's counts and an error correction of ``ec_efficiency``.
    A design aid (which intensities suit a link of this length and block size),
    never used to release a key."""
    config = config or SessionConfig()
    counts = []
    for observed, share in zip(
        theoretical_observed(params, params.distance_km),
        params.probabilities,
        strict=True,
    ):
        sent = pulses * share
        sifted = sent * observed.gain / 2.0
        counts.append(
            IntensityCounts(
                round(sent),
                round(2.0 * sifted),
                round(sifted),
                round(sifted * observed.qber),
            )
        )
    signal = counts[SIGNAL]
    if signal.sifted == 0:
        return 0
    estimates = estimate(params, tuple(counts), config.sigmas, signal.errors)
    if not estimates.bounds.usable:
        return 0
    kept = signal.sifted * (1.0 - config.sample_fraction)
    leaked = ec_efficiency * kept * binary_entropy(signal.qber)
    length = secure_length(
        kept * estimates.single_photon_fraction,
        estimates.bounds.e1_upper,
        math.ceil(leaked),
        EPSILON_VERIFY,
        config.epsilon_pa,
    )
    return max(0, length)


def _estimate_qber(
    record: LinkRecord,
    config: SessionConfig,
    progress: _Progress,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    sample, kept = split_sample(record.alice_key.size, config.sample_fraction, rng)
    mismatches = np.count_nonzero(record.alice_key[sample] != record.bob_key[sample])
    progress.qber_estimate = mismatches / sample.size if sample.size else 0.5
    progress.sample_bits, progress.sample_errors = int(sample.size), int(mismatches)
    if kept.size < config.min_sifted_bits:
        raise _AbortError(f"too few sifted bits ({kept.size})")
    if progress.qber_estimate > config.qber_abort:
        raise _AbortError(
            f"QBER estimate {progress.qber_estimate:.4f} above threshold "
            f"{config.qber_abort}"
        )
    return record.alice_key[kept], record.bob_key[kept]


def _whiten(record: LinkRecord, key_rng: np.random.Generator | None) -> LinkRecord:
    """Make the raw key cryptographically random in unseeded runs.

    The emulator's bits come from PCG64, which is fast but not a cryptographic
    generator. XOR-ing both sides' sifted bits with one pad from ``secrets``
    leaves the error pattern, the only thing the channel model determines,
    unchanged: in the model errors do not depend on the bit value.
    """
    if key_rng is not None:
        return record
    pad = random_bits(record.alice_key.size)
    return replace(
        record, alice_key=record.alice_key ^ pad, bob_key=record.bob_key ^ pad
    )


def _reconcile(
    alice: np.ndarray, bob: np.ndarray, qber: float, rng: np.random.Generator
) -> tuple[np.ndarray, int, int]:
    """Cascade on frames of at most CASCADE_FRAME_BITS: memory stays bounded
    (16 passes of permutations per frame) on long keys."""
    frames = max(1, math.ceil(alice.size / CASCADE_FRAME_BITS))
    pairs = zip(np.array_split(alice, frames), np.array_split(bob, frames), strict=True)
    results = [cascade(a, b, qber, rng) for a, b in pairs]
    corrected = np.concatenate([r.corrected for r in results])
    leaked = sum(r.leaked_bits for r in results)
    return corrected, leaked, sum(r.flipped_bits for r in results)


def _verify(
    alice: np.ndarray, bob: np.ndarray, key_rng: np.random.Generator | None
) -> None:
    """Compare 64-bit tags under a fresh seed; any residual error aborts."""
    seed = random_bits(alice.size + VERIFY_TAG_BITS - 1, key_rng)
    if not np.array_equal(verification_tag(alice, seed), verification_tag(bob, seed)):
        raise _AbortError("verification hash mismatch after error correction")


def _amplify(
    bits: np.ndarray, length: int, key_rng: np.random.Generator | None
) -> bytes:
    seed = random_bits(bits.size - 1, key_rng)
    return np.packbits(modified_toeplitz_hash(bits, seed, length)).tobytes()


def _report(result: SessionResult) -> dict[str, object]:
    params = result.params
    bounds = result.estimates.bounds if result.estimates else None
    eta = params.transmittance()
    return {
        "params": params.as_dict(),
        "transmittance": eta,
        "pulses": result.pulses,
        "seed": result.seed,
        "detections": sum(c.detections for c in result.counts),
        "gain": result.signal.gain,
        "qber": result.signal.qber,
        "qber_estimate": result.qber_estimate,
        "sample_bits": result.sample_bits,
        "sifted_bits": result.signal.sifted,
        "intensities": _intensity_report(result.counts),
        "decoy_bounds": _bounds_report(bounds),
        "ec_leaked_bits": result.ec_leaked_bits,
        "ec_efficiency": result.ec_efficiency,
        "final_key_bits": result.final_key_bits,
        "final_key_bits_per_pulse": result.final_key_bits / result.pulses,
        "key_rate_per_pulse": result.key_rate_per_pulse,
        "theory_key_rate_per_pulse": theory_rate(params, params.distance_km),
        "seed_formula_rate": result.seed_formula_rate,
        "seed_formula_note": "K = Q[1 - h(e)] from the seed paper; comparison only",
        "plob_bound_per_pulse": plob_bound(eta),
        "epsilon_pa": result.config.epsilon_pa,
        "epsilon_verify": EPSILON_VERIFY,
        "estimation_sigmas": result.config.sigmas,
        "aborted": result.aborted,
        "abort_reason": result.abort_reason,
    }


def _intensity_report(counts: tuple[IntensityCounts, ...]) -> dict[str, object]:
    return {
        name: {
            "pulses": c.pulses,
            "detections": c.detections,
            "gain": c.gain,
            "sifted": c.sifted,
            "qber": c.qber,
        }
        for name, c in zip(INTENSITY_NAMES, counts, strict=True)
    }


def _bounds_report(bounds: DecoyBounds | None) -> dict[str, float] | None:
    if bounds is None:
        return None
    return {
        "y0": bounds.y0,
        "y1_lower": bounds.y1_lower,
        "e1_upper": bounds.e1_upper,
        "q1_lower": bounds.q1_lower,
        "h_e1_upper": binary_entropy(bounds.e1_upper),
    }
