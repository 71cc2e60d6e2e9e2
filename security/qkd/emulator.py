"""Pulse-by-pulse emulation of a decoy-state BB84 link (vectorised NumPy).

Each pulse draws one 64-bit word that decides, by inverse CDF of their exact
joint distribution, which intensity Alice sent and whether Bob's detector
clicked. A Poisson photon number n thinned by the channel gives a click with
probability 1 - (1 - Y0)(1 - eta)^n, whose Poisson average is exactly
Q = 1 - (1 - Y0) exp(-eta mu); so the photon numbers of the ~99.8 % of pulses
that never click influence nothing and are not materialised. For every click we
then draw, from the exact conditional distributions, the photon number, whether a
photon or only a dark count fired, Alice's bit and basis, Bob's basis,
misalignment and the eavesdropper. The statistics are those of drawing every
photon number; the work per pulse is one random word and three comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .channel import DECOY, SIGNAL, VACUUM, LinkParams

CHUNK_PULSES = 1 << 20  # 8 MiB of random words per chunk: memory stays flat
_MAX_PHOTONS = 40  # Poisson(0.48) mass beyond 40 photons is below 1e-60
_TWO_64 = 2.0**64


@dataclass(frozen=True)
class IntensityCounts:
    """What one intensity produced. ``single_photon_*`` are emulator-only truth,
    used to validate the decoy bounds and never by the protocol."""

    pulses: int
    detections: int
    sifted: int
    errors: int
    single_photon_detections: int = 0
    single_photon_sifted: int = 0
    single_photon_errors: int = 0

    @property
    def gain(self) -> float:
        return self.detections / self.pulses if self.pulses else 0.0

    @property
    def qber(self) -> float:
        return self.errors / self.sifted if self.sifted else 0.0

    def __add__(self, other: IntensityCounts) -> IntensityCounts:
        return IntensityCounts(
            *(a + b for a, b in zip(_fields(self), _fields(other), strict=True))
        )


def _fields(counts: IntensityCounts) -> tuple[int, ...]:
    return (
        counts.pulses,
        counts.detections,
        counts.sifted,
        counts.errors,
        counts.single_photon_detections,
        counts.single_photon_sifted,
        counts.single_photon_errors,
    )


@dataclass(frozen=True, eq=False)
class LinkRecord:
    """Result of emulating the quantum phase and basis sifting.

    ``alice_key``/``bob_key`` are the sifted bits of signal pulses (uint8, in
    pulse order); decoy and vacuum bits are announced for parameter estimation,
    so only their counts are kept.
    """

    params: LinkParams
    pulses: int
    counts: tuple[IntensityCounts, IntensityCounts, IntensityCounts]
    alice_key: np.ndarray
    bob_key: np.ndarray

    @property
    def detections(self) -> int:
        return sum(c.detections for c in self.counts)


@dataclass(frozen=True, eq=False)
class _Model:
    """Precomputed thresholds and conditional tables for one LinkParams."""

    thresholds: np.ndarray  # uint64 cut points of the joint (intensity, click) law
    photon_cdf: np.ndarray  # [intensity, n]: CDF of n given a click
    photon_fired: np.ndarray  # [n]: P(a photon, not only a dark count | n, click)
    misalignment: float
    eve_fraction: float


def _click_probability(n: np.ndarray, eta: float, y0: float) -> np.ndarray:
    return 1.0 - (1.0 - y0) * (1.0 - eta) ** n


def _poisson(mean: float, n: np.ndarray) -> np.ndarray:
    if mean == 0.0:
        return (n == 0).astype(float)
    log_factorial = np.array([math.lgamma(k + 1.0) for k in n])
    return np.exp(n * math.log(mean) - mean - log_factorial)


def _build_model(params: LinkParams) -> _Model:
    eta, y0 = params.transmittance(), params.dark_count_prob
    n = np.arange(_MAX_PHOTONS + 1, dtype=float)
    click = _click_probability(n, eta, y0)
    gains = [1.0 - (1.0 - y0) * math.exp(-eta * mu) for mu in params.intensities]
    cdf = []
    for mu, q in zip(params.intensities, gains, strict=True):
        cdf.append(np.cumsum(_poisson(mu, n) * click) / q)
    # Layout [S click | D click | V click | S none | D none | V none]: one compare
    # finds every click, two more count pulses per intensity.
    probs = params.probabilities
    joint = [p * q for p, q in zip(probs, gains, strict=True)]
    joint += [p * (1.0 - q) for p, q in zip(probs, gains, strict=True)]
    cuts = np.cumsum(joint)[:-1]
    thresholds = np.array([min(int(c * _TWO_64), 2**64 - 1) for c in cuts], np.uint64)
    fired = np.where(n > 0, (1.0 - (1.0 - eta) ** n) / click, 0.0)
    return _Model(
        thresholds, np.array(cdf), fired, params.misalignment, params.eve_fraction
    )


def emulate(params: LinkParams, pulses: int, rng: np.random.Generator) -> LinkRecord:
    """Send ``pulses`` pulses through the link and sift the clicks."""
    if pulses <= 0:
        raise ValueError("pulses must be positive")
    model = _build_model(params)
    totals = [IntensityCounts(0, 0, 0, 0)] * 3
    alice_parts, bob_parts = [], []
    for start in range(0, pulses, CHUNK_PULSES):
        size = min(CHUNK_PULSES, pulses - start)
        counts, alice, bob = _emulate_chunk(model, size, rng)
        totals = [t + c for t, c in zip(totals, counts, strict=True)]
        alice_parts.append(alice)
        bob_parts.append(bob)
    return LinkRecord(
        params,
        pulses,
        (totals[SIGNAL], totals[DECOY], totals[VACUUM]),
        np.concatenate(alice_parts),
        np.concatenate(bob_parts),
    )


def _pulses_per_intensity(
    words: np.ndarray, thresholds: np.ndarray, clicks_by_intensity: np.ndarray
) -> np.ndarray:
    clicks = int(clicks_by_intensity.sum())
    below_decoy_dark = int(np.count_nonzero(words < thresholds[3]))
    below_vacuum_dark = int(np.count_nonzero(words < thresholds[4]))
    dark = np.array(
        [
            below_decoy_dark - clicks,
            below_vacuum_dark - below_decoy_dark,
            words.size - below_vacuum_dark,
        ]
    )
    return clicks_by_intensity + dark


def _emulate_chunk(
    model: _Model, size: int, rng: np.random.Generator
) -> tuple[list[IntensityCounts], np.ndarray, np.ndarray]:
    words = rng.bit_generator.random_raw(size)
    clicked = words[words < model.thresholds[2]]
    intensity = (clicked >= model.thresholds[0]).astype(np.int8) + (
        clicked >= model.thresholds[1]
    )
    clicks_by_intensity = np.bincount(intensity, minlength=3)
    pulses = _pulses_per_intensity(words, model.thresholds, clicks_by_intensity)
    photons, alice, bob, sifted = _detect(model, intensity, rng)
    return _tally(pulses, intensity, photons, alice, bob, sifted)


def _detect(
    model: _Model, intensity: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Photon numbers, bits and bases for the clicked pulses."""
    size = intensity.size
    uniforms = rng.random((4, size))
    photons = np.empty(size, dtype=np.int64)
    for k in range(3):
        mask = intensity == k
        photons[mask] = np.searchsorted(model.photon_cdf[k], uniforms[0, mask], "right")
    np.minimum(photons, _MAX_PHOTONS, out=photons)
    fired = uniforms[1] < model.photon_fired[photons]
    flips = uniforms[2] < model.misalignment
    eve = (uniforms[3] < model.eve_fraction) & (photons > 0)
    bits = rng.integers(0, 16, size, dtype=np.uint8)
    alice_bit, alice_basis = bits & 1, (bits >> 1) & 1
    bob_basis, eve_basis = (bits >> 2) & 1, (bits >> 3) & 1
    coin = rng.integers(0, 2, size, dtype=np.uint8)
    # Bob's bit is random after a dark count alone, or when Eve measured in the
    # other basis (her resent state is then unbiased in Alice's basis). Otherwise
    # Bob sees Alice's bit, flipped by misalignment. Eve resends the same photon
    # number, so her attack leaves the click statistics unchanged.
    faithful = fired & ~(eve & (eve_basis != alice_basis))
    bob_bit = np.where(faithful, alice_bit ^ flips, coin).astype(np.uint8)
    sifted = alice_basis == bob_basis
    return photons, alice_bit, bob_bit, sifted


def _tally(
    pulses: np.ndarray,
    intensity: np.ndarray,
    photons: np.ndarray,
    alice: np.ndarray,
    bob: np.ndarray,
    sifted: np.ndarray,
) -> tuple[list[IntensityCounts], np.ndarray, np.ndarray]:
    error = sifted & (alice != bob)
    single = photons == 1
    columns = [
        np.ones_like(sifted),
        sifted,
        error,
        single,
        single & sifted,
        single & error,
    ]
    tallies = [np.bincount(intensity[c], minlength=3) for c in columns]
    counts = [
        IntensityCounts(int(pulses[k]), *(int(t[k]) for t in tallies)) for k in range(3)
    ]
    key = sifted & (intensity == SIGNAL)
    return counts, alice[key], bob[key]
