"""Parameter estimation: disclosed QBER sample and decoy bounds from counts.

Statistical fluctuations of the measured gains and error rates are bounded with
a Gaussian (Wilson-score) interval of ``sigmas`` standard deviations around each
count, the treatment of Ma, Qi, Zhao and Lo 2005 (Sec. VI). This is not a
composable finite-key analysis: the failure probability of the estimate is only
that of a ``sigmas``-sigma Gaussian tail per estimated quantity (about 3e-7 for
5 sigma), not epsilon_PA. ``sigmas = 0`` gives the plug-in (asymptotic)
estimates used to compare the emulation with theory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .channel import DECOY, SIGNAL, VACUUM, LinkParams
from .decoy import DecoyBounds, decoy_bounds
from .emulator import IntensityCounts


def count_interval(count: int, sigmas: float) -> tuple[float, float]:
    """Wilson-score interval for a small-probability count (Poisson-like).

    Unlike count +- sigmas * sqrt(count) it stays sensible for a handful of
    events, e.g. the few dark counts of the vacuum decoy.
    """
    centre = count + sigmas * sigmas / 2.0
    half_width = sigmas * math.sqrt(count + sigmas * sigmas / 4.0)
    return max(0.0, centre - half_width), centre + half_width


@dataclass(frozen=True)
class Estimates:
    """Bounded rates used by the key-length formula."""

    signal_gain_upper: float
    bounds: DecoyBounds

    @property
    def single_photon_fraction(self) -> float:
        """Lower bound on the share of signal clicks that came from one photon."""
        if self.signal_gain_upper <= 0.0:
            return 0.0
        return min(1.0, self.bounds.q1_lower / self.signal_gain_upper)


def _rate_bounds(counts: IntensityCounts, sigmas: float) -> tuple[float, float]:
    low, high = count_interval(counts.detections, sigmas)
    return low / counts.pulses, high / counts.pulses


def estimate(
    params: LinkParams,
    counts: tuple[IntensityCounts, ...],
    sigmas: float,
    signal_errors: int | None = None,
) -> Estimates:
    """Decoy bounds from the announced decoy/vacuum data and the signal gain.

    ``signal_errors`` (errors among the sifted signal bits, known to both sides
    once error correction has been verified) adds the signal-based e1 bound.
    """
    if min(c.pulses for c in counts) == 0 or counts[DECOY].sifted == 0:
        return Estimates(1.0, DecoyBounds(0.0, 0.0, 0.5, 0.0))
    _, q_mu_high = _rate_bounds(counts[SIGNAL], sigmas)
    q_nu_low, q_nu_high = _rate_bounds(counts[DECOY], sigmas)
    y0_low, y0_high = _rate_bounds(counts[VACUUM], sigmas)
    errors_high = count_interval(counts[DECOY].errors, sigmas)[1]
    error_rate_nu = min(0.5, errors_high / counts[DECOY].sifted)
    error_gain_mu = None
    if signal_errors is not None and counts[SIGNAL].sifted:
        signal_high = count_interval(signal_errors, sigmas)[1]
        error_gain_mu = min(0.5, signal_high / counts[SIGNAL].sifted) * q_mu_high
    bounds = decoy_bounds(
        params.mu,
        params.decoy_mu,
        q_mu_high,
        q_nu_low,
        error_rate_nu * q_nu_high,
        y0_high,
        y0_low,
        error_gain_mu,
    )
    return Estimates(q_mu_high, bounds)


def split_sample(
    size: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Public random choice of sifted positions to disclose; returns (sample, kept)."""
    order = rng.permutation(size)
    cut = math.ceil(fraction * size)
    return np.sort(order[:cut]), np.sort(order[cut:])
